// `mintjulep ramachandran`: importance-reweighted phi/psi analysis of sampler output
// (mintjulep sample) or of a reference trajectory (mintjulep md): chirality, basin weights,
// Jensen-Shannon divergence to a reference, PNG plot and JSON summary.
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/ramachandran.hpp>
#include <mintjulep/systems.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "cli/commands.hpp"
#include "cli/console.hpp"
#include "cli/outputs.hpp"
#include "model/run_model.hpp"

namespace mintjulep::cli {
namespace {

struct RamachandranOptions {
  std::string system = "ala2";
  std::string input, reference, png, json;
  int64_t bins = 60;
  int64_t burn_in = 0;  // frames of an md trajectory to drop
};

// Configurations (M, N, 3) and normalised weights (M,) from an .npz file.
struct Weighted {
  torch::Tensor x, weights;
  std::string kind;
  double ess = 1.0;
  int64_t dropped = 0;
};

Weighted load_weighted(const std::string& path, const Energy& system, int64_t burn_in) {
  auto arrays = read_npz(path);
  check(arrays.count("positions"),
        fmt::format("'{}' has no 'positions' array; give the output of mintjulep sample or md", path));
  auto x = arrays["positions"].to(torch::kFloat64);
  Weighted w;
  if (x.dim() == 4) {  // md: (F, R, N, n)
    check(burn_in >= 0 && burn_in < x.size(0),
          fmt::format("--burn-in {} must be below the {} frames of '{}'", burn_in, x.size(0), path));
    x = x.narrow(0, burn_in, x.size(0) - burn_in).reshape({-1, x.size(2), x.size(3)});
    w.weights = torch::full({x.size(0)}, 1.0 / static_cast<double>(x.size(0)), torch::kFloat64);
    w.kind = "trajectory";
  } else {
    check(arrays.count("log_w"), fmt::format("'{}' has positions but no 'log_w'", path));
    auto log_w = arrays["log_w"].to(torch::kFloat64);
    check(log_w.dim() == 1 && log_w.size(0) == x.size(0),
          fmt::format("'{}': log_w has {} entries for {} configurations", path, log_w.numel(), x.size(0)));
    auto finite = torch::isfinite(log_w);
    w.dropped = (~finite).sum().item<int64_t>();
    check(w.dropped < x.size(0), fmt::format("'{}': no finite log weight", path));
    x = x.index({finite});
    log_w = log_w.index({finite});
    w.weights = torch::softmax(log_w, 0);
    w.ess = summarize_log_weights(log_w).ess;
    w.kind = "weighted samples";
  }
  system.check_positions(x, path + ": positions");
  w.x = x;
  return w;
}

struct Analysis {
  torch::Tensor histogram;
  BasinFractions basins;
  double l_fraction = 0;
};

Analysis analyse(const Weighted& w, const BackboneAtoms& atoms, int64_t bins) {
  Analysis a;
  a.l_fraction = (w.weights * (chirality(w.x, atoms) > 0)).sum().item<double>();
  auto x = mirror_to_l(w.x, atoms);  // both chiralities have the same energy
  auto phi = dihedral(x, atoms.c_prev, atoms.n, atoms.ca, atoms.c);
  auto psi = dihedral(x, atoms.n, atoms.ca, atoms.c, atoms.n_next);
  a.histogram = ramachandran_histogram(phi, psi, w.weights, bins);
  a.basins = basin_fractions(phi, psi, w.weights);
  return a;
}

void run_ramachandran(const RamachandranOptions& opt) {
  auto system = make_system(opt.system);
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(system);
  check(molecule != nullptr,
        fmt::format("system '{}' is not a molecule; Ramachandran analysis needs a peptide", opt.system));
  check(opt.bins >= 2, "--bins must be >= 2");
  for (const auto* path : {&opt.png, &opt.json})
    if (!path->empty()) check_writable(*path);
  const auto atoms = find_backbone(molecule->topology());
  auto data = load_weighted(opt.input, *system, opt.burn_in);
  auto result = analyse(data, atoms, opt.bins);
  nlohmann::json summary = {
      {"input", opt.input},
      {"kind", data.kind},
      {"num_configurations", data.x.size(0)},
      {"non_finite_dropped", data.dropped},
      {"ess", data.ess},
      {"l_fraction", result.l_fraction},
      {"basins", {{"c7eq_c5", result.basins.c7eq_c5}, {"alpha_r", result.basins.alpha_r},
                  {"alpha_l_c7ax", result.basins.alpha_l_c7ax}}},
      {"bins", opt.bins}};
  fmt::print("{}: {} {} (ESS {:.2f}%), L fraction {:.3f}\n", opt.input, data.x.size(0), data.kind,
             100 * data.ess, result.l_fraction);
  fmt::print("basins (mirrored to L): C7eq/C5 {:.3f}  alpha_R {:.3f}  alpha_L/C7ax {:.3f}\n",
             result.basins.c7eq_c5, result.basins.alpha_r, result.basins.alpha_l_c7ax);
  if (!opt.reference.empty()) {
    auto ref = analyse(load_weighted(opt.reference, *system, opt.burn_in), atoms, opt.bins);
    const double js = jensen_shannon(result.histogram, ref.histogram);
    summary["reference"] = opt.reference;
    summary["js_divergence"] = js;
    summary["reference_basins"] = {{"c7eq_c5", ref.basins.c7eq_c5}, {"alpha_r", ref.basins.alpha_r},
                                   {"alpha_l_c7ax", ref.basins.alpha_l_c7ax}};
    fmt::print("reference {}: C7eq/C5 {:.3f}  alpha_R {:.3f}  alpha_L/C7ax {:.3f}\n", opt.reference,
               ref.basins.c7eq_c5, ref.basins.alpha_r, ref.basins.alpha_l_c7ax);
    fmt::print("Jensen-Shannon divergence ({}x{} bins, natural log): {:.4f}\n", opt.bins, opt.bins, js);
  }
  if (!opt.png.empty()) {
    write_ramachandran_png(opt.png, result.histogram);
    console().info(fmt::format("wrote {} (phi horizontal, psi vertical, -180..180 degrees)\n", opt.png));
  }
  if (!opt.json.empty()) write_text_atomically(opt.json, summary.dump(2) + "\n");
  console().result(summary);
}

}  // namespace

void add_ramachandran_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<RamachandranOptions>();
  auto* cmd = app.add_subcommand(
      "ramachandran", "Reweighted phi/psi histogram, basins, chirality and JS divergence of a peptide");
  cmd->add_option("--system", opt->system, "molecular system")->capture_default_str();
  cmd->add_option("--in", opt->input, ".npz from mintjulep sample (weighted) or mintjulep md")->required();
  cmd->add_option("--reference", opt->reference, ".npz to compare with (usually a long md run)");
  cmd->add_option("--burn-in", opt->burn_in, "md frames to drop from the start of each trajectory")
      ->capture_default_str();
  cmd->add_option("--bins", opt->bins, "histogram bins per angle")->capture_default_str();
  cmd->add_option("--png", opt->png, "write the histogram as a PNG heat map");
  cmd->add_option("--json", opt->json, "write the numbers as JSON");
  cmd->callback([opt, &global] {
    apply_global_options(global);
    run_ramachandran(*opt);
  });
}

}  // namespace mintjulep::cli
