// `mintjulep metrics`: importance-weighted samples (mintjulep sample) against an unweighted
// reference (mintjulep md): ESS, log Z with its standard error, the energy W1 and W2 and the
// interatomic-distance W2; for an md reference also the integrated autocorrelation time of its
// energy and its effective size.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/metrics.hpp>
#include <mintjulep/systems.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <optional>

#include "cli/commands.hpp"
#include "cli/console.hpp"
#include "cli/outputs.hpp"
#include "model/run_model.hpp"

namespace mintjulep::cli {
namespace {

struct MetricsOptions {
  std::string input, reference, system, json;
  int64_t burn_in = 0;      // leading frames of each md replica of the reference to drop
  int64_t in_burn_in = -1;  // the same for an md trajectory given as --in; -1: burn_in
};

void run_metrics(const MetricsOptions& opt) {
  check(opt.burn_in >= 0, "--burn-in must be >= 0");
  check(opt.in_burn_in >= -1, "--in-burn-in must be >= 0");
  if (!opt.json.empty()) check_writable(opt.json);
  std::shared_ptr<Energy> system;
  if (!opt.system.empty()) system = make_system(opt.system);
  ReadConfigurationsOptions ref_options;
  ref_options.role = "--reference";
  ref_options.reference = true;
  ref_options.burn_in = opt.burn_in;
  const auto ref = read_weighted_configurations(opt.reference, system.get(), ref_options);
  // Read before anything is printed, so that bad input prints one line.
  std::optional<WeightedConfigurations> in;
  if (!opt.input.empty()) {
    ReadConfigurationsOptions in_options;
    in_options.burn_in = opt.in_burn_in >= 0 ? opt.in_burn_in : opt.burn_in;
    in_options.burn_in_name = "--in-burn-in (default --burn-in)";
    in = read_weighted_configurations(opt.input, system.get(), in_options);
    check(in->positions.size(1) == ref.positions.size(1) && in->positions.size(2) == ref.positions.size(2),
          fmt::format("--in '{}' has {} particles in {} dimensions, --reference '{}' {} in {}", opt.input,
                      in->positions.size(1), in->positions.size(2), opt.reference, ref.positions.size(1), ref.positions.size(2)));
  }
  std::optional<Autocorrelation> ac;
  if (ref.trajectory && ref.frames >= 2) ac = autocorrelation(ref.energy_series);
  std::optional<SampleMetrics> metrics;
  if (in) metrics = compare_samples(in->positions, in->log_w, in->energies, ref.positions, ref.energies);
  nlohmann::json summary = {{"reference", opt.reference},
                            {"reference_configurations", ref.positions.size(0)},
                            {"burn_in", opt.burn_in}};
  if (ref.trajectory) {
    fmt::print("reference {}: {} frames x {} replicas after {} burn-in frames ({} configurations)\n",
               opt.reference, ref.frames, ref.replicas, opt.burn_in, ref.positions.size(0));
    summary["reference_frames"] = ref.frames;
    summary["reference_replicas"] = ref.replicas;
    if (ac) {
      fmt::print("reference energy autocorrelation: tau {:.2f} +- {:.2f} frames (window {}), effective size "
                 "{:.0f} ({:.1f} per replica)\n",
                 ac->tau, ac->tau_se, ac->window, ac->ess, ac->ess_per_replica);
      if (!ac->long_enough)
        fmt::print("  fewer than 50 tau frames per replica: tau is unreliable (usually too small); use a longer run\n");
      summary["reference_energy_tau"] = ac->tau;
      summary["reference_energy_tau_se"] = ac->tau_se;
      summary["reference_energy_tau_window"] = ac->window;
      summary["reference_long_enough"] = ac->long_enough;
      summary["reference_effective_size"] = ac->ess;
      summary["reference_effective_size_per_replica"] = ac->ess_per_replica;
    }
  } else {
    fmt::print("reference {}: {} configurations\n", opt.reference, ref.positions.size(0));
  }
  if (in && in->trajectory) summary["in_burn_in"] = opt.in_burn_in >= 0 ? opt.in_burn_in : opt.burn_in;
  if (metrics) {
    const SampleMetrics& m = *metrics;
    const auto& w = m.weights;
    fmt::print("samples {}: {} {}{}\n", opt.input, w.num_samples,
               in->trajectory ? "md configurations (equal weights)" : "weighted samples",
               w.num_zero ? fmt::format(" ({} with non-finite log w, counted as weight 0)", w.num_zero) : "");
    fmt::print("  {:<13} {:>12.2f} %   ({:.1f} of {})\n", "ESS", 100 * w.ess, w.effective_count, w.num_samples);
    fmt::print("  {:<13} {:>12.4f} +- {:.4f}\n", "log Z", w.log_z, w.log_z_se);
    fmt::print("  {:<13} {:>12.5g} kT\n", "energy W1", m.energy_w1);
    fmt::print("  {:<13} {:>12.5g} kT\n", "energy W2", m.energy_w2);
    fmt::print("  {:<13} {:>12.5g}\n", "distance W2", m.distance_w2);
    summary["input"] = opt.input;
    summary["num_samples"] = w.num_samples;
    summary["non_finite_log_w"] = w.num_zero;
    summary["ess"] = w.ess;
    summary["effective_count"] = w.effective_count;
    summary["log_z"] = w.log_z;
    summary["log_z_se"] = w.log_z_se;
    summary["energy_w1"] = m.energy_w1;
    summary["energy_w2"] = m.energy_w2;
    summary["distance_w2"] = m.distance_w2;
  }
  if (!opt.json.empty()) write_text_atomically(opt.json, summary.dump(2) + "\n");
  console().result(summary);
}

}  // namespace

void add_metrics_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<MetricsOptions>();
  auto* cmd = app.add_subcommand(
      "metrics", "ESS, log Z +- se, energy W1/W2 and distance W2 of weighted samples against a reference");
  cmd->add_option("--in", opt->input,
                  ".npz of weighted samples (mintjulep sample: positions, log_w, energies); without it "
                  "only the reference is summarised");
  cmd->add_option("--reference", opt->reference,
                  "unweighted reference .npz (mintjulep md, or sample --resample)")
      ->required();
  cmd->add_option("--system", opt->system, "system whose energy computes missing 'energies' and checks shapes");
  cmd->add_option("--burn-in", opt->burn_in,
                  "md frames to drop from the start of each replica of the reference (and of an md --in, "
                  "unless --in-burn-in)")
      ->capture_default_str();
  cmd->add_option("--in-burn-in", opt->in_burn_in,
                  "md frames to drop from each replica of an md trajectory given as --in (default: --burn-in)");
  cmd->add_option("--json", opt->json, "also write the numbers as JSON");
  cmd->callback([opt, &global] {
    apply_global_options(global);
    run_metrics(*opt);
  });
}

}  // namespace mintjulep::cli
