// `mintjulep md`: reference Langevin dynamics (BAOAB) of many replicas in parallel, written as
// a numpy .npz trajectory with phi/psi for peptides (checkpointed atomically, resumable) and,
// on request, as PDB, DCD or extended XYZ files.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/langevin.hpp>
#include <mintjulep/metrics.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/ramachandran.hpp>
#include <mintjulep/systems.hpp>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/commands.hpp"
#include "cli/console.hpp"
#include "cli/device.hpp"
#include "cli/outputs.hpp"

namespace mintjulep::cli {
namespace {

struct MdCommandOptions {
  std::string system;
  std::string input;
  std::string out;
  std::vector<std::string> trajectories;
  double temperature = 0.0;
  int64_t replicas = 64;
  int64_t steps = 20000;
  double dt = 0.0005;
  double friction = 1.0;
  int64_t report_every = 100;
  int64_t checkpoint_every = 50;  // frames
  int64_t burn_in = 0;            // frames left out of the autocorrelation report
  int64_t seed = 0;
  bool resume = false;
};

struct Trajectory {
  std::vector<torch::Tensor> positions, energies;
  std::vector<int64_t> steps;
};

void write_arrays(const std::string& path, const Trajectory& traj, const LangevinState& state,
                  const MdCommandOptions& opt, const std::optional<BackboneAtoms>& backbone) {
  std::vector<std::pair<std::string, torch::Tensor>> arrays;
  auto steps = torch::tensor(traj.steps, torch::kLong);
  if (!traj.positions.empty()) {
    auto x = torch::stack(traj.positions);  // (F, R, N, n)
    arrays.push_back({"positions", x});
    arrays.push_back({"energies", torch::stack(traj.energies)});
    if (backbone) {
      auto flat = x.reshape({-1, x.size(2), x.size(3)});
      const auto& b = *backbone;
      auto shape = std::vector<int64_t>{x.size(0), x.size(1)};
      arrays.push_back({"phi", dihedral(flat, b.c_prev, b.n, b.ca, b.c).reshape(shape)});
      arrays.push_back({"psi", dihedral(flat, b.n, b.ca, b.c, b.n_next).reshape(shape)});
      if (b.cb >= 0) arrays.push_back({"chirality", chirality(flat, b).reshape(shape)});
    }
  }
  arrays.push_back({"steps", steps});
  arrays.push_back({"time_ps", steps.to(torch::kFloat64) * opt.dt});
  arrays.push_back({"final_positions", state.positions.cpu()});
  arrays.push_back({"final_velocities", state.velocities.cpu()});
  arrays.push_back({"final_step", torch::tensor({state.step}, torch::kLong)});
  arrays.push_back({"settings", torch::tensor({opt.dt, opt.friction, static_cast<double>(opt.seed),
                                               static_cast<double>(opt.report_every)},
                                              torch::kFloat64)});
  write_npz(path, arrays);
}

// The integrated autocorrelation time of the energy over the saved frames after --burn-in,
// in frames and steps, and the effective number of independent configurations it implies;
// added to `result` when it could be measured.
void report_autocorrelation(const Trajectory& traj, const MdCommandOptions& opt, nlohmann::json& result) {
  const int64_t frames = static_cast<int64_t>(traj.energies.size()) - opt.burn_in;
  if (frames < 2) {
    console().info(fmt::format("energy autocorrelation: needs at least 2 frames after --burn-in {}\n", opt.burn_in));
    return;
  }
  auto u = torch::stack(traj.energies).narrow(0, opt.burn_in, frames);
  if (!(u.std(0) > 0).all().item<bool>()) {
    console().info("energy autocorrelation: a replica's energy is constant over the frames\n");
    return;
  }
  const Autocorrelation ac = autocorrelation(u);
  console().info(fmt::format("energy autocorrelation over frames {}..{}: tau {:.2f} +- {:.2f} frames ({:.0f} steps), "
                             "effective size {:.0f} ({:.1f} per replica)\n",
                             opt.burn_in, opt.burn_in + frames - 1, ac.tau, ac.tau_se,
                             ac.tau * static_cast<double>(opt.report_every), ac.ess, ac.ess_per_replica));
  if (!ac.long_enough)
    console().info("  fewer than 50 tau frames per replica: tau is unreliable (usually too small); run longer\n");
  result["energy_tau_frames"] = ac.tau;
  result["energy_tau_se"] = ac.tau_se;
  result["effective_size"] = ac.ess;
  result["tau_reliable"] = ac.long_enough;
}

void run_md(const MdCommandOptions& opt, const GlobalOptions& global) {
  apply_global_options(global);
  const torch::Device device = parse_device(global.device);
  check(opt.replicas >= 1, "--replicas must be >= 1");
  check(opt.steps >= 1, "--steps must be >= 1");
  check(opt.burn_in >= 0, "--burn-in must be >= 0");
  check(opt.report_every >= 1 && opt.checkpoint_every >= 1,
        "--report-every and --checkpoint-every must be >= 1");
  const OutputFiles outputs = resolve_outputs(opt.out, opt.trajectories);
  const std::string& npz = outputs.npz;
  auto system = make_system(opt.system, SystemOptions{opt.temperature});
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(system);

  // Units: molecules in nm, ps, amu, kJ/mol; other systems in reduced units (kT = 1, m = 1).
  torch::Tensor masses = molecule ? molecule->masses()
                                  : torch::ones({system->num_particles()}, torch::kFloat64);
  const double kt = molecule ? molecule->kT() : 1.0;
  std::optional<BackboneAtoms> backbone;
  if (molecule) {
    try {
      backbone = find_backbone(molecule->topology());
    } catch (const Error&) {
    }
  }

  LangevinOptions options;
  options.timestep = opt.dt;
  options.friction = opt.friction;
  options.steps = opt.steps;
  options.report_every = opt.report_every;
  options.seed = static_cast<uint64_t>(opt.seed);
  LangevinIntegrator md(system, masses, kt, options);

  Trajectory traj;
  LangevinState state;
  if (opt.resume && std::filesystem::exists(npz)) {
    auto saved = read_npz(npz);
    for (const char* key : {"final_positions", "final_velocities", "final_step", "steps", "settings"})
      check(saved.count(key), fmt::format("--resume: '{}' has no '{}'; it was not written by "
                                          "mintjulep md",
                                          npz, key));
    auto settings = saved["settings"];
    check(settings[0].item<double>() == opt.dt && settings[1].item<double>() == opt.friction &&
              settings[2].item<double>() == static_cast<double>(opt.seed) &&
              settings[3].item<double>() == static_cast<double>(opt.report_every),
          fmt::format("--resume: '{}' was run with --dt {} --friction {} --seed {} --report-every {}; "
                      "resume with the same settings",
                      npz, settings[0].item<double>(), settings[1].item<double>(),
                      settings[2].item<double>(), settings[3].item<double>()));
    state.positions = saved["final_positions"].to(device);
    state.velocities = saved["final_velocities"].to(device);
    state.step = saved["final_step"][0].item<int64_t>();
    system->check_positions(state.positions, "--resume: saved positions");
    check(state.positions.size(0) == opt.replicas,
          fmt::format("--resume: '{}' has {} replicas, not {}", npz, state.positions.size(0),
                      opt.replicas));
    if (saved.count("positions")) {
      auto x = saved["positions"], u = saved["energies"], s = saved["steps"];
      for (int64_t f = 0; f < x.size(0); ++f) {
        traj.positions.push_back(x[f]);
        traj.energies.push_back(u[f]);
        traj.steps.push_back(s[f].item<int64_t>());
      }
    }
    console().info(fmt::format("resuming {} at step {} of {}\n", npz, state.step, opt.steps));
  } else {
    torch::Tensor x0;
    if (!opt.input.empty()) {
      x0 = read_configurations(opt.input, *system);
    } else {
      x0 = system->reference_configuration();
      check(x0.defined(),
            fmt::format("system '{}' has no built-in structure; give starting positions with --in", opt.system));
    }
    check(x0.size(0) == 1 || x0.size(0) == opt.replicas,
          fmt::format("--in has {} configurations; give 1 (copied to every replica) or --replicas ({})",
                      x0.size(0), opt.replicas));
    state = md.initial_state(x0.expand({opt.replicas, x0.size(1), x0.size(2)}).contiguous().to(device));
  }

  const char* time_unit = molecule ? "ps" : "time units";
  console().info(fmt::format("md: system {}, {} replicas x {} steps of {} {} (friction {} per {}), {} threads, "
                             "device {}\n",
                             system->name(), opt.replicas, opt.steps, opt.dt, time_unit, opt.friction,
                             molecule ? "ps" : "time unit", at::get_num_threads(), device.str()));
  const auto start = std::chrono::steady_clock::now();
  const int64_t first_step = state.step;
  int64_t frames_since_checkpoint = 0;
  // Each checkpoint rewrites the whole file, so it also waits until 10x the last rewrite's time
  // has passed: long runs then spend at most ~10 % on checkpoints instead of a share that grows
  // with the file.
  auto last_checkpoint = start;
  double last_write_seconds = 0.0;
  // Steps of each replica; the mean energy of the last frame goes with each update.
  ProgressMeter meter(console().progress_sink(), "md", "steps", opt.steps, state.step);
  md.run(state, [&](const LangevinState& s, const torch::Tensor& u) {
    traj.positions.push_back(s.positions.to(torch::kCPU, torch::kFloat64));
    traj.energies.push_back(u.to(torch::kCPU, torch::kFloat64));
    traj.steps.push_back(s.step);
    meter.set_detail(fmt::format("mean U {:.3f} kT", traj.energies.back().mean().item<double>()));
    meter.update(s.step);
    const auto now = std::chrono::steady_clock::now();
    if (++frames_since_checkpoint >= opt.checkpoint_every &&
        std::chrono::duration<double>(now - last_checkpoint).count() >= 10.0 * last_write_seconds) {
      write_arrays(npz, traj, s, opt, backbone);
      frames_since_checkpoint = 0;
      last_checkpoint = std::chrono::steady_clock::now();
      last_write_seconds = std::chrono::duration<double>(last_checkpoint - now).count();
    }
  });
  write_arrays(npz, traj, state, opt, backbone);
  if (!outputs.trajectories.empty() && !traj.positions.empty()) {
    // Replica by replica, so that each replica's frames follow one another.
    auto x = torch::stack(traj.positions).transpose(0, 1);  // (R, F, N, n)
    auto u = torch::stack(traj.energies).transpose(0, 1).contiguous();
    const int64_t frames = x.size(1);
    const auto e = u.accessor<double, 2>();
    std::vector<std::string> labels;
    for (int64_t r = 0; r < x.size(0); ++r)
      for (int64_t f = 0; f < frames; ++f)
        labels.push_back(fmt::format("replica={} step={} {}={:.10g} energy={:.10g}", r,
                                     traj.steps[static_cast<size_t>(f)], molecule ? "time_ps" : "time",
                                     static_cast<double>(traj.steps[static_cast<size_t>(f)]) * opt.dt, e[r][f]));
    for (const auto& path : outputs.trajectories)
      write_trajectory(path, x.reshape({-1, x.size(2), x.size(3)}), *system, labels);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  console().info(fmt::format("wrote {} ({} frames x {} replicas) in {:.1f} s\n", outputs.describe(),
                             traj.positions.size(), opt.replicas, seconds));
  const double steps_run = static_cast<double>(state.step - first_step);
  nlohmann::json result = {{"system", system->name()},
                           {"replicas", opt.replicas},
                           {"steps", state.step},
                           {"frames", traj.positions.size()},
                           {"seconds", seconds},
                           {"steps_per_second", seconds > 0 ? steps_run / seconds : 0.0},
                           {"outputs", outputs.all()}};
  report_autocorrelation(traj, opt, result);
  console().result(result);
}

}  // namespace

void add_md_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<MdCommandOptions>();
  auto* cmd = app.add_subcommand(
      "md", "Reference Langevin dynamics (BAOAB) of many replicas in parallel, written as .npz");
  cmd->add_option("--system", opt->system, "system name, e.g. ala2")->required();
  cmd->add_option("--in", opt->input,
                  "starting positions (.pdb, .npy, .xyz, .npz; 1 or R configurations); default: "
                  "the molecule's PDB structure");
  cmd->add_option("--out", opt->out,
                  "output .npz (positions (F, R, N, n), energies, phi, psi; what --resume reads), or "
                  ".pdb, .dcd or .xyz (Angstrom, replica by replica; the arrays then go to the same name "
                  "with .npz)")
      ->required();
  cmd->add_option("--trajectory", opt->trajectories,
                  "also write the frames to this .pdb, .dcd or .xyz file at the end (repeatable)");
  cmd->add_option("--replicas", opt->replicas, "independent replicas run in parallel")->capture_default_str();
  cmd->add_option("--steps", opt->steps, "steps per replica")->capture_default_str();
  cmd->add_option("--dt", opt->dt, "time step (ps for molecules)")->capture_default_str();
  cmd->add_option("--friction", opt->friction, "friction (1/ps for molecules)")->capture_default_str();
  cmd->add_option("--temperature", opt->temperature, "kelvin, molecules only (default 300)");
  cmd->add_option("--report-every", opt->report_every, "steps between saved frames")->capture_default_str();
  cmd->add_option("--checkpoint-every", opt->checkpoint_every,
                  "frames between atomic rewrites of the .npz (at least; a rewrite also waits 10x the last "
                  "one's time)")
      ->capture_default_str();
  cmd->add_option("--burn-in", opt->burn_in,
                  "frames left out of the energy autocorrelation report at the end (not of the file)")
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  cmd->add_flag("--resume", opt->resume, "continue the run saved in --out (same settings)");
  cmd->callback([opt, &global] { run_md(*opt, global); });
}

}  // namespace mintjulep::cli
