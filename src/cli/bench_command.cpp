// `mintjulep bench`: a grid of methods x systems x seeds (mintjulep::run_bench), chosen by a
// bench file ([bench] section) and the command line's options, which win.
#include <mintjulep/bench.hpp>
#include <mintjulep/error.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>

#include "cli/commands.hpp"
#include "cli/device.hpp"

namespace mintjulep::cli {
namespace {

struct BenchCommandOptions {
  std::string file;  // bench file with a [bench] section
  std::string out;
  std::vector<std::string> systems, methods;
  std::vector<int64_t> seeds;
  std::string budget;
  std::string configs;
  std::vector<std::string> system_configs;  // SYSTEM=FILE
  std::vector<std::string> references;      // SYSTEM=FILE
  int64_t samples = 0, steps = 0, iterations = -1, mint_steps = -1, kernel_samples = 0, kernel_steps = 0;
  bool no_samples = false;
  int64_t jobs = 1;
  std::string worker;  // SYSTEM:SEED, set by the process that starts the worker
};

// The command line that starts a worker of this grid: this program with the same arguments, less
// --log-json (the JSON log is the starting process's own).
std::vector<std::string> worker_command(const std::vector<std::string>& args) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  check(!ec, fmt::format("--jobs: cannot find this program's path ({}); use --jobs 1", ec.message()));
  std::vector<std::string> command{self.string()};
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--log-json") {
      ++i;
      continue;
    }
    if (args[i].rfind("--log-json=", 0) == 0) continue;
    command.push_back(args[i]);
  }
  return command;
}

// "SYSTEM=FILE" -> (SYSTEM, FILE).
std::pair<std::string, std::string> system_and_file(const std::string& text, const std::string& option) {
  const auto eq = text.find('=');
  check(eq != std::string::npos && eq > 0 && eq + 1 < text.size(),
        fmt::format("{} '{}' must look like SYSTEM=FILE, e.g. {} dw4=FILE", option, text, option));
  return {text.substr(0, eq), text.substr(eq + 1)};
}

void run_bench_command(const BenchCommandOptions& opt, const CLI::App& cmd, const GlobalOptions& global) {
  BenchSettings settings;
  if (!opt.file.empty()) settings = load_bench_settings(opt.file);
  if (!opt.systems.empty()) settings.systems = opt.systems;
  if (!opt.methods.empty()) settings.methods = opt.methods;
  if (!opt.seeds.empty()) settings.seeds = opt.seeds;
  if (cmd.count("--budget")) settings.budget = opt.budget;
  if (cmd.count("--configs")) settings.configs = opt.configs;
  if (opt.no_samples) settings.keep_samples = false;
  for (const auto& item : opt.system_configs) {
    auto [system, file] = system_and_file(item, "--config");
    settings.per_system[system].config = file;
  }
  for (const auto& item : opt.references) {
    auto [system, file] = system_and_file(item, "--reference");
    settings.per_system[system].reference = file;
  }
  if (cmd.count("--samples")) settings.command_line.samples = opt.samples;
  if (cmd.count("--steps")) settings.command_line.steps = opt.steps;
  if (cmd.count("--iterations")) settings.command_line.iterations = opt.iterations;
  if (cmd.count("--mint-steps")) settings.command_line.mint_steps = opt.mint_steps;
  if (cmd.count("--kernel-samples")) settings.command_line.kernel_samples = opt.kernel_samples;
  if (cmd.count("--kernel-steps")) settings.command_line.kernel_steps = opt.kernel_steps;
  check(opt.jobs >= 1, fmt::format("--jobs must be >= 1, got {}", opt.jobs));
  apply_global_options(global);
  const torch::Device device = parse_device(global.device);
  const BenchPlan plan = plan_bench(settings);  // bad input fails here, before any work
  BenchRunOptions run;
  run.jobs = opt.jobs;
  run.worker = opt.worker;
  if (opt.jobs > 1 && opt.worker.empty()) run.worker_command = worker_command(global.args);
  const BenchReport report = run_bench(plan, opt.out, device, print_log(), run);
  if (report.failed > 0)
    throw std::runtime_error(fmt::format("{} of {} bench cells failed (their errors are in {}); the others are in "
                                         "the tables",
                                         report.failed, report.cells, report.results_md));
}

}  // namespace

void add_bench_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<BenchCommandOptions>();
  auto* cmd = app.add_subcommand(
      "bench", "Run a grid of methods x systems x seeds and tabulate ESS, log Z, W2 and wall time");
  cmd->add_option("file", opt->file, "bench file with a [bench] section (optional; the options below win)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", opt->out, "output folder; run again with the same folder to continue a stopped grid")
      ->required();
  cmd->add_option("--systems", opt->systems, "systems, comma-separated (default: dw4,lj13,lj13-half,lj55,lj55-half)")
      ->delimiter(',');
  cmd->add_option("--methods", opt->methods,
                  "methods, comma-separated: prior, ais-ula, ais-mala, smc-mala, julep, smc-julep, pis, dds, gauss-julep, "
                  "mint-additive (default: all but the last two, the ablations)")
      ->delimiter(',');
  cmd->add_option("--seeds", opt->seeds, "seeds, comma-separated (default: 0,1,2)")->delimiter(',');
  cmd->add_option("--budget", opt->budget, "small (reduced, for a few CPU cores; default) or paper (1e5 samples)");
  cmd->add_option("--samples", opt->samples, "samples per cell, every system (overrides the budget)");
  cmd->add_option("--steps", opt->steps, "annealing steps T, every system (overrides the budget)");
  cmd->add_option("--iterations", opt->iterations, "kernel training iterations, every system (overrides the budget)");
  cmd->add_option("--mint-steps", opt->mint_steps, "Mint prior training steps, every system (default: the config's)");
  cmd->add_option("--kernel-samples", opt->kernel_samples,
                  "samples of the cells with a trained kernel (julep, smc-julep, pis, dds, ...), every system "
                  "(default: --samples)");
  cmd->add_option("--kernel-steps", opt->kernel_steps, "T of the trained kernels, every system (default: --steps)");
  cmd->add_option("--jobs", opt->jobs,
                  "system-seed pairs computed at once, each in its own process with --threads threads "
                  "(default 1; on 2 cores: --jobs 2 --threads 1)");
  cmd->add_option("--worker", opt->worker, "internal: compute only SYSTEM:SEED (started by --jobs)")->group("");
  cmd->add_option("--configs", opt->configs, "folder of the system configs SYSTEM.toml (default: configs)");
  cmd->add_option("--config", opt->system_configs, "SYSTEM=FILE: the config of one system (repeatable)");
  cmd->add_option("--reference", opt->references,
                  "SYSTEM=FILE: reference samples of one system (default: DATA/SYSTEM-reference.npz when present; "
                  "repeatable)");
  cmd->add_flag("--no-samples", opt->no_samples, "do not keep samples.npz in the cell folders");
  cmd->callback([opt, cmd, &global] { run_bench_command(*opt, *cmd, global); });
}

}  // namespace mintjulep::cli
