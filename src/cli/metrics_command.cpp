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

// Configurations (M, N, n) with their log weights and energies, read from an .npz.
struct Loaded {
  torch::Tensor x, log_w, energies;
  int64_t frames = 0, replicas = 0;  // md trajectories: after the burn-in
  torch::Tensor energy_series;       // md trajectories: (frames, replicas)
  bool trajectory = false;
};

torch::Tensor compute_energies(const Energy& system, const torch::Tensor& x, const std::string& path) {
  system.check_positions(x, path + ": positions");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < x.size(0); start += 4096)
    parts.push_back(system.energy(x.narrow(0, start, std::min<int64_t>(4096, x.size(0) - start)), 1.0)
                        .to(torch::kCPU, torch::kFloat64));
  return torch::cat(parts);
}

// `role` is "--in" or "--reference"; sample files need log_w, md trajectories get equal weights.
Loaded load(const std::string& path, const std::string& role, const std::shared_ptr<Energy>& system,
            int64_t burn_in) {
  auto arrays = read_npz(path);
  check(arrays.count("positions"),
        fmt::format("{} '{}' has no 'positions' array; give the output of mintjulep sample or md", role, path));
  Loaded out;
  auto x = arrays["positions"].to(torch::kFloat64);
  check(x.dim() == 3 || x.dim() == 4,
        fmt::format("{} '{}': positions must be (S, N, n) samples or (F, R, N, n) md frames, got {} dimensions",
                    role, path, x.dim()));
  torch::Tensor u = arrays.count("energies") ? arrays["energies"].to(torch::kFloat64) : torch::Tensor();
  if (x.dim() == 4) {  // md: (F, R, N, n), equally weighted after the burn-in
    check(burn_in >= 0 && burn_in < x.size(0),
          fmt::format("{} {} must be below the {} frames of '{}'", role == "--in" ? "--in-burn-in (default --burn-in)" : "--burn-in",
                      burn_in, x.size(0), path));
    if (u.defined())
      check(u.dim() == 2 && u.size(0) == x.size(0) && u.size(1) == x.size(1),
            fmt::format("{} '{}': energies have shape {}, positions {} frames x {} replicas", role, path,
                        fmt::join(u.sizes(), "x"), x.size(0), x.size(1)));
    out.trajectory = true;
    out.frames = x.size(0) - burn_in;
    out.replicas = x.size(1);
    x = x.narrow(0, burn_in, out.frames);
    if (u.defined()) u = u.narrow(0, burn_in, out.frames);
    else if (system) u = compute_energies(*system, x.reshape({-1, x.size(2), x.size(3)}), path).reshape({out.frames, out.replicas});
    if (u.defined()) out.energy_series = u;
    x = x.reshape({-1, x.size(2), x.size(3)});
    out.log_w = torch::zeros({x.size(0)}, torch::kFloat64);
  } else {
    const int64_t s = x.size(0);
    if (role == "--in") {
      check(arrays.count("log_w"),
            fmt::format("--in '{}' has positions but no 'log_w' importance weights", path));
      out.log_w = arrays["log_w"].to(torch::kFloat64);
      check(out.log_w.dim() == 1 && out.log_w.size(0) == s,
            fmt::format("--in '{}': log_w has shape ({}) for {} configurations", path,
                        fmt::join(out.log_w.sizes(), ", "), s));
    } else {
      // A reference must be equally weighted (e.g. the output of sample --resample).
      if (arrays.count("log_w")) {
        auto lw = arrays["log_w"].to(torch::kFloat64);
        check(lw.numel() == s && (lw == lw.flatten()[0]).all().item<bool>(),
              fmt::format("--reference '{}' has unequal importance weights; give unweighted samples "
                          "(mintjulep md, or sample --resample)", path));
      }
      out.log_w = torch::zeros({s}, torch::kFloat64);
    }
    if (u.defined())
      check(u.dim() == 1 && u.size(0) == s,
            fmt::format("{} '{}': energies have shape ({}) for {} configurations", role, path,
                        fmt::join(u.sizes(), ", "), s));
    else if (system)
      u = compute_energies(*system, x, path);
  }
  check(u.defined(), fmt::format("{} '{}' has no 'energies'; give --system to compute them", role, path));
  if (system) system->check_positions(x, role + " '" + path + "': positions");
  check(x.size(0) >= 1, fmt::format("{} '{}' holds no configurations", role, path));
  out.x = x;
  out.energies = u.flatten();
  return out;
}

void run_metrics(const MetricsOptions& opt) {
  check(opt.burn_in >= 0, "--burn-in must be >= 0");
  check(opt.in_burn_in >= -1, "--in-burn-in must be >= 0");
  if (!opt.json.empty()) check_writable(opt.json);
  std::shared_ptr<Energy> system;
  if (!opt.system.empty()) system = make_system(opt.system);
  const Loaded ref = load(opt.reference, "--reference", system, opt.burn_in);
  std::optional<Loaded> in;  // read before anything is printed, so that bad input prints one line
  if (!opt.input.empty()) {
    in = load(opt.input, "--in", system, opt.in_burn_in >= 0 ? opt.in_burn_in : opt.burn_in);
    check(in->x.size(1) == ref.x.size(1) && in->x.size(2) == ref.x.size(2),
          fmt::format("--in '{}' has {} particles in {} dimensions, --reference '{}' {} in {}", opt.input,
                      in->x.size(1), in->x.size(2), opt.reference, ref.x.size(1), ref.x.size(2)));
  }
  std::optional<Autocorrelation> ac;
  if (ref.trajectory && ref.frames >= 2) ac = autocorrelation(ref.energy_series);
  std::optional<SampleMetrics> metrics;
  if (in) metrics = compare_samples(in->x, in->log_w, in->energies, ref.x, ref.energies);
  nlohmann::json summary = {{"reference", opt.reference},
                            {"reference_configurations", ref.x.size(0)},
                            {"burn_in", opt.burn_in}};
  if (ref.trajectory) {
    fmt::print("reference {}: {} frames x {} replicas after {} burn-in frames ({} configurations)\n",
               opt.reference, ref.frames, ref.replicas, opt.burn_in, ref.x.size(0));
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
    fmt::print("reference {}: {} configurations\n", opt.reference, ref.x.size(0));
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
