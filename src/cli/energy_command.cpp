// `mintjulep energy`: energies (and forces) of configurations read from .npy, .npz, .xyz, .pdb
// or .dcd files.
#include <mintjulep/energy.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/systems.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>


#include "cli/commands.hpp"
#include "cli/console.hpp"
#include "cli/outputs.hpp"
#include "cli/device.hpp"

namespace mintjulep::cli {
namespace {

struct EnergyOptions {
  std::string system;
  std::string input;
  double t = 1.0;
  double temperature = 0.0;
  int64_t anchor = -1;
  bool print_forces = false;
  std::string forces_out;
  std::string dtype = "float64";
  int64_t chunk = 4096;
};

void run_energy(const EnergyOptions& opt, const GlobalOptions& global) {
  apply_global_options(global);
  const torch::Device device = parse_device(global.device);
  auto system = make_system(opt.system, SystemOptions{opt.temperature});
  check(opt.t >= 0.0 && opt.t <= 1.0, fmt::format("--t {} is outside [0, 1]", opt.t));
  check(opt.chunk > 0, "--chunk must be positive");
  AnchoredEnergy energy(system, opt.anchor >= 0 ? opt.anchor : system->default_anchor());
  const auto dtype = opt.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
  if (!opt.forces_out.empty()) check_writable(opt.forces_out);
  auto x = read_configurations(opt.input, *system);

  const bool want_forces = opt.print_forces || !opt.forces_out.empty();
  std::vector<torch::Tensor> energies, forces;
  ProgressMeter meter(console().progress_sink(), "energy", "configurations", x.size(0));
  for (int64_t start = 0; start < x.size(0); start += opt.chunk) {
    auto chunk = x.narrow(0, start, std::min(opt.chunk, x.size(0) - start)).to(device, dtype);
    auto y = energy.to_anchored(chunk);
    if (want_forces) {
      auto vg = energy.value_and_grad(y, opt.t);
      energies.push_back(vg.value.to(torch::kCPU, torch::kFloat64));
      forces.push_back(energy.full_forces(vg.grad).to(torch::kCPU, torch::kFloat64));
    } else {
      torch::NoGradGuard no_grad;
      energies.push_back(energy.value(y, opt.t).to(torch::kCPU, torch::kFloat64));
    }
    meter.update(start + chunk.size(0));
  }
  auto e = torch::cat(energies);
  auto f = want_forces ? torch::cat(forces).contiguous() : torch::Tensor();
  const auto e_acc = e.accessor<double, 1>();
  std::string out;
  for (int64_t b = 0; b < e.size(0); ++b) {
    out += fmt::format("{:.17g}", e_acc[b]);
    if (opt.print_forces) {
      const double* row = f[b].data_ptr<double>();
      for (int64_t k = 0; k < f[b].numel(); ++k) out += fmt::format(" {:.17g}", row[k]);
    }
    out += '\n';
  }
  // The energies are the command's output: printed even with --quiet.
  console().output(out);
  if (!opt.forces_out.empty()) write_npy(opt.forces_out, f);
  const int64_t non_finite = (~e.isfinite()).sum().item<int64_t>();
  if (non_finite > 0) console().warning("some energies are not finite (overlapping particles?)");
  nlohmann::json result = {{"system", system->name()}, {"configurations", e.size(0)}, {"non_finite", non_finite}};
  if (!opt.forces_out.empty()) result["forces_out"] = opt.forces_out;
  console().result(result);
}

}  // namespace

void add_energy_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<EnergyOptions>();
  auto* cmd = app.add_subcommand(
      "energy",
      "Print the energy (kT) of each configuration in a .npy (B, N, n), .npz, .xyz, .pdb or .dcd file");
  cmd->add_option("--system", opt->system, "system name, e.g. dw4, lj13, lj:13:3, ala2 (positions in nm)")->required();
  cmd->add_option("--in", opt->input,
                  "configurations: .npy of shape (B, N, n), .npz (positions), .xyz, or .pdb/.dcd "
                  "(Angstrom, every model/frame)")
      ->required();
  cmd->add_option("--temperature", opt->temperature,
                  "kelvin, molecular systems only (energies in kT at this temperature; default 300)");
  cmd->add_option("--t", opt->t, "path time in [0, 1]; 1 is the target energy")
      ->capture_default_str();
  cmd->add_option("--anchor", opt->anchor, "anchor particle (default: the system's)");
  cmd->add_flag("--forces", opt->print_forces,
                "also print the forces -dU/dx (kT per length unit) after each energy, "
                "N*n numbers in row order");
  cmd->add_option("--forces-out", opt->forces_out, "write forces as a (B, N, n) float64 .npy file");
  cmd->add_option("--dtype", opt->dtype, "float64 or float32")
      ->check(CLI::IsMember({"float32", "float64"}))
      ->capture_default_str();
  cmd->add_option("--chunk", opt->chunk, "configurations evaluated at once")->capture_default_str();
  cmd->callback([opt, &global] { run_energy(*opt, global); });
}

}  // namespace mintjulep::cli
