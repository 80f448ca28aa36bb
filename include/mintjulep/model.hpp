#pragma once
// A sampler assembled from a run configuration, and what the command line tool does with it
// as library calls: build (system + anchored energy + prior, the prior's initialisation on
// minima, the Julep kernel), train (Mint stage, kernel stage, annealing stage) into a run
// folder, save and load run folders, and draw importance-weighted samples.
//
// The system is either a built-in one named by RunConfig::system (systems.hpp) or any
// user-provided Energy (energy.hpp). Summary lines go to a Log, by default standard output;
// the progress of long loops goes to a Progress (progress.hpp), by default plain progress
// lines in the same Log.
#include <mintjulep/annealing.hpp>
#include <mintjulep/config.hpp>
#include <mintjulep/energy.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/progress.hpp>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>

namespace mintjulep {

// Writes to standard output and flushes.
Log print_log();
// Discards everything.
Log silent_log();

struct Model {
  RunConfig config;
  std::shared_ptr<Energy> system;
  std::shared_ptr<AnchoredEnergy> energy;
  MintPrior prior{nullptr};
  JulepSampler sampler{nullptr};
  torch::Device device{torch::kCPU};
  Log log = print_log();
  // Receives the progress of every long loop: Mint steps ("mint", "mint fit"), the prior's
  // evaluation ("mint eval"), kernel iterations ("julep"), path evaluations ("ais baseline",
  // "julep eval"), annealing chunks ("anneal METHOD") and sampling ("sample julep", "sample
  // prior"). Unset: plain progress lines through `log` (log_progress); silent_progress()
  // turns them off.
  Progress progress;
};

// The Progress a model's loops report to: model.progress, else log_progress(model.log).
Progress progress_sink(const Model& model);

// A freshly initialised model (seeded with config.seed) of the built-in system config.system,
// on `device`. With prior_from_checkpoint the prior's initialisation from a reference
// structure or minima is skipped (a checkpoint replaces it).
Model build_model(const RunConfig& config, torch::Device device, bool prior_from_checkpoint = false,
                  Log log = print_log());
// The same for a user-provided energy; config.system is not looked up (it is set to
// system->name() when empty). config.temperature does not apply: the energy is in kT already.
Model build_model(std::shared_ptr<Energy> system, const RunConfig& config, torch::Device device,
                  bool prior_from_checkpoint = false, Log log = print_log());

// The untrained AIS baseline on the same prior: A = b = Util = 0, fixed eps.
JulepSampler make_ais_baseline(const Model& model, int64_t steps = 0);

// Runs the annealing method of `options` on `count` chains (ula: the AIS baseline kernel;
// julep: the model's kernel; mala: the prior and energy alone), logging progress and a summary.
AnnealResult anneal_model(const Model& model, const AnnealOptions& options, int64_t count, uint64_t seed);

// What train() does; the defaults are `mintjulep train CONFIG --out FOLDER`.
struct TrainRunOptions {
  std::string stage = "all";   // all (Mint then Julep/annealing), mint, or julep (needs from)
  std::string from;            // stage julep: the run folder whose prior.pt it starts from
  std::string fit_samples;     // .npz of reference configurations: fit the prior to them instead
  int64_t burn_in = 0;         // md frames of fit_samples to drop
  bool relabel = true;         // with fit_samples: permute identical particles at random
  bool resume = false;         // continue the run saved in the folder
  bool evaluate_anneal = true; // run the config's [anneal] evaluation after a trained kernel
  // Written to FOLDER/config.toml (what load_run reads back); empty: config.toml is left as is.
  std::string config_text;
};

// Trains `model` (from build_model, with prior_from_checkpoint = stage == "julep") in the run
// folder: the Mint stage (prior.pt), the AIS baseline, the Julep kernel stage and the
// [anneal] evaluation (sampler.pt), with metrics.json rewritten after each part. Returns the
// metrics as JSON text.
std::string train(Model& model, const std::string& folder, const TrainRunOptions& options = {});

// Checks what a train() call with these options would reject before any work (bad stage,
// julep without from, fit_samples with julep).
void check_train_options(const TrainRunOptions& options);

// Writes prior.pt and sampler.pt of the model into `folder` (created if missing); config.toml
// is written by train() or by the caller.
void save_run(const Model& model, const std::string& folder);
// A model of the run folder written by train(): its config.toml, the trained sampler.pt when
// present or required, else prior.pt.
Model load_run(const std::string& folder, torch::Device device, bool require_kernel = false,
               Log log = print_log());
// The same for a user-provided energy (null: the built-in config.system) and the config the
// run was made with.
Model load_run(const std::string& folder, std::shared_ptr<Energy> system, const RunConfig& config,
               torch::Device device, bool require_kernel = false, Log log = print_log());

void save_checkpoint(torch::nn::Module& module, const std::string& path);
// Loads a checkpoint written by save_checkpoint; a missing file or one written for another
// configuration is an Error naming the file.
void load_checkpoint(torch::nn::Module& module, const std::string& path, torch::Device device);

struct SamplingOptions {
  // "": the trained Julep kernel; "prior": fresh prior draws, log w = -U - log q; or an
  // annealing method (anneal_methods()) on the model's [anneal] options.
  std::string method;
  int64_t count = 10000;
  uint64_t seed = 0;
  int64_t chunk = 500;
  bool chunk_given = false;  // annealing: chunk replaces [anneal] chunk (the SMC population)
  int64_t steps = 0;         // annealing T (0: the config's)
  int64_t moves = 0;         // MALA moves per temperature (0: the config's)
  int64_t leapfrog = 0;      // leapfrog steps per move, 1 MALA, > 1 HMC (0: the config's)
  double schedule_power = 0; // temperatures t_j = (j / T)^power (0: the config's)
  int64_t independence = -1; // independence moves from the prior per temperature (-1: the config's)
  int64_t pilot = -1;        // chains of the step-size pilot, 0 none (-1: the config's)
  std::string path;          // "soft" or "geometric" MALA/HMC path ("": the config's)
  // The trained kernel and prior draws: also called with (done, count) after each chunk. Every
  // method reports its progress to the model's Progress as well.
  std::function<void(int64_t, int64_t)> progress;
  // When set, every finished chunk is saved (atomically) in this folder, and the chunks found
  // there from a call with the same partial_key are taken instead of drawn again: an interrupted
  // call, repeated, ends with the samples of an uninterrupted one. Chunks kept under another
  // key are deleted. The caller removes the folder once it has the samples.
  std::string partial_folder;
  std::string partial_key;  // everything the samples depend on (method, seed, chunk, count, run)
};

struct Samples {
  torch::Tensor positions;  // (M, N, n) float64 on the CPU, the anchor at the origin
  torch::Tensor log_w;      // (M,) float64 log importance weights
  torch::Tensor energies;   // (M,) float64 U(x) in kT
  double ess = 0;           // normalised ESS (path ESS; SMC: the final ESS)
  double log_z = 0;         // log mean w
  int64_t num_non_finite = 0;
  // Trajectories whose log w became NaN (an energy, gradient or density that could not be
  // evaluated) or +inf (overflow; SMC: also those zeroed at a resampling step), and final
  // log w = -inf (an infinite energy). All weigh 0 in every estimate.
  int64_t num_nan = 0, num_overflow = 0, num_zero = 0;
  std::string dropped;      // one phrase for logs, e.g. "all 2000 weights finite"
  bool smc = false;         // the method resamples
  double seconds = 0;
};

// Draws `options.count` weighted samples from the model (seeded with options.seed).
Samples sample(Model& model, const SamplingOptions& options);

// Reverse MALA/HMC annealing (reverse_anneal, the upper half of bidirectional Monte Carlo) from
// exact samples of the target, e.g. a long md run: `positions` (B, N, n) in the system's
// coordinates (any translation), of which options.count are taken, evenly spaced. The [anneal]
// keys with options' overrides, as sample() uses them; method must be mala. result.log_z is
// -log mean w_reverse, an estimate of log Z that is high on average where AIS's is low.
AnnealResult reverse_sample(Model& model, const SamplingOptions& options, const torch::Tensor& positions);

}  // namespace mintjulep
