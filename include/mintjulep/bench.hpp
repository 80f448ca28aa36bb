#pragma once
// A benchmark grid: methods x systems x seeds, each cell a trained model sampled with one
// method and measured (ESS, log Z with its standard error, energy and distance Wasserstein
// distances against a reference when one exists, wall time), written to a folder with one
// subfolder per cell, results.json and a Markdown table results.md (`mintjulep bench`).
//
// The Mint stage is trained once per (system, seed) and shared by every method of that pair;
// the Julep kernel likewise by the methods that need it (julep, smc-julep). Finished cells and
// trainings are reused when the same grid is run again into the same folder, so an
// interrupted grid continues where it stopped.
#include <mintjulep/model.hpp>

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mintjulep {

// The methods a grid can hold, in table order: prior (fresh prior draws), ais-ula, ais-mala,
// smc-mala, julep (the trained kernel), smc-julep (the trained kernel inside SMC); and the
// baselines and ablations of DESIGN.md §5, each a kernel trained on its own modified config:
// pis (isotropic Gaussian prior of half the default scale, additive kernel, reverse KL through
// the trajectories), dds (isotropic Gaussian prior, additive kernel, log-variance loss),
// gauss-julep (isotropic Gaussian prior + the full Julep kernel) and mint-additive (the Mint
// prior + the additive kernel).
const std::vector<std::string>& bench_methods();
// The methods of a grid that names none: the paper's Table 1 rows and this project's
// annealing methods (all of bench_methods() but the two ablations).
const std::vector<std::string>& default_bench_methods();
// Whether a bench method needs a trained Julep kernel.
bool bench_method_needs_kernel(const std::string& method);
// The systems of the paper's Table 1: dw4, lj13, lj13-half, lj55, lj55-half.
const std::vector<std::string>& default_bench_systems();

// What a cell may spend. Unset values keep the system config's own.
struct BenchBudget {
  std::optional<int64_t> samples;         // samples drawn per cell
  std::optional<int64_t> steps;           // annealing T: [julep] steps and [anneal] steps
  std::optional<int64_t> iterations;      // [train] iterations of the kernel
  std::optional<int64_t> mint_steps;      // [mint] steps of the prior
  std::optional<int64_t> kernel_samples;  // samples of the cells with a trained kernel (default: samples)
  std::optional<int64_t> kernel_steps;    // the trained kernel's T, [julep] steps (default: steps)

  // Each value set in `other` replaces this one's.
  void update(const BenchBudget& other);
};

// The paper's sample count, which reduced budgets are measured against.
constexpr int64_t kPaperSamples = 100000;
// The built-in budget `name` ("small" or "paper") of a system; throws Error naming the known
// budgets for another name.
BenchBudget builtin_budget(const std::string& name, const std::string& system);

// Per-system settings of a bench file ([bench.SYSTEM]).
struct BenchSystemSettings {
  std::string config;     // system config file (default: CONFIGS/SYSTEM.toml, -half: the full one's)
  std::string reference;  // reference samples .npz (default: DATA/SYSTEM-reference.npz if present)
  BenchBudget budget;
};

// What a bench file or the command line chooses; empty lists mean the defaults.
struct BenchSettings {
  std::vector<std::string> systems;
  std::vector<std::string> methods;
  std::vector<int64_t> seeds;
  std::string budget = "small";
  std::string configs = "configs";  // folder of the system configs
  BenchBudget overrides;            // every system ([bench] samples, ...)
  std::map<std::string, BenchSystemSettings> per_system;
  BenchBudget command_line;         // every system, applied last (the command line's options)
  bool keep_samples = true;         // write samples.npz in each cell
};

// Reads the [bench] section of a TOML file (keys: systems, methods, seeds, budget, configs,
// samples, steps, iterations, mint_steps, kernel_samples, kernel_steps, keep_samples, and
// per-system tables [bench.SYSTEM] with config, reference and the budget keys). Paths are relative to the
// file's folder. Unknown keys are errors. Budget precedence: the built-in budget, then [bench],
// then [bench.SYSTEM], then command_line.
BenchSettings load_bench_settings(const std::string& path);

// One system of a grid, resolved: its config file, reference and budget.
struct BenchSystem {
  std::string name;
  std::string config;     // base config file; its `system` key is replaced by `name`
  std::string reference;  // empty: none
  // samples, kernel_samples, iterations and mint_steps always set; steps unset only where the
  // config's [anneal] steps and [julep] steps differ (each method then keeps its own);
  // kernel_steps unset where the kernel keeps steps (or its config's T)
  BenchBudget budget;
  bool reduced = false;   // samples (or kernel_samples) below the paper's 1e5
  torch::Tensor reference_positions;  // (C, N, n) float64, equally weighted
  torch::Tensor reference_energies;   // (C,) kT
};

// A checked grid: every system exists and has a readable config, every method is known, seeds
// are distinct, budgets are valid, references are readable. Throws Error naming the problem.
struct BenchPlan {
  std::vector<BenchSystem> systems;
  std::vector<std::string> methods;
  std::vector<int64_t> seeds;
  std::string budget;
  bool keep_samples = true;
};
BenchPlan plan_bench(const BenchSettings& settings);

struct BenchReport {
  int64_t cells = 0, computed = 0, reused = 0, failed = 0;
  std::string results_json, results_md;  // paths
};

// How run_bench spreads a grid over processes.
struct BenchRunOptions {
  // (system, seed) pairs computed at once, each by a worker process (each pair's cells share
  // their trainings, so pairs are independent). 1: every cell in this process.
  int64_t jobs = 1;
  // Program and arguments that run this same grid (the `mintjulep bench` command line); a
  // worker is started as it with "--worker SYSTEM:SEED" appended. Needed when jobs > 1.
  std::vector<std::string> worker_command;
  // "SYSTEM:SEED": this process is a worker, computing only that pair's cells; it writes no
  // tables (the process that started it does).
  std::string worker;
};

// Runs (or continues) the grid into folder `out`: OUT/train/SYSTEM-sSEED/{mint,julep} run
// folders (OUT/train/SYSTEM-sSEED/VARIANT/{mint,julep} for pis, dds, gauss and additive), OUT/SYSTEM-METHOD-sSEED/ cells (run/, samples.npz, metrics.json), results.json and
// results.md, rewritten after every cell. One progress line per cell start and end goes to
// `log`; training and sampling progress to log files in the run and cell folders. A cell that
// fails is recorded with its error and the grid goes on. With options.jobs > 1 the pairs run in
// worker processes, whose cell lines are relayed to `log` prefixed with the pair; the tables
// are written as each worker ends.
BenchReport run_bench(const BenchPlan& plan, const std::string& out, torch::Device device, const Log& log,
                      const BenchRunOptions& options = {});

}  // namespace mintjulep
