#pragma once
// Building a sampler from a run configuration, and saving/loading its checkpoints in a run
// folder (prior.pt after stage 1, sampler.pt after stage 2, config.toml, metrics.json).
#include <mintjulep/annealing.hpp>
#include <mintjulep/config.hpp>
#include <mintjulep/energy.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/mint_prior.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace mintjulep::cli {

struct Model {
  RunConfig config;
  std::shared_ptr<Energy> system;
  std::shared_ptr<AnchoredEnergy> energy;
  MintPrior prior{nullptr};
  JulepSampler sampler{nullptr};
  torch::Device device{torch::kCPU};
};

// A freshly initialised model (seeded with config.seed) on `device`. With prior_from_checkpoint
// the prior's initialisation from a reference structure is skipped (a checkpoint replaces it).
Model build_model(const RunConfig& config, torch::Device device, bool prior_from_checkpoint = false);

// The untrained AIS baseline on the same prior: A = b = Util = 0, fixed eps.
JulepSampler make_ais_baseline(const Model& model, int64_t steps = 0);

// Runs the annealing method of `options` on `count` chains (ula: the AIS baseline kernel; julep:
// the model's kernel; mala: the prior and energy alone), prints progress and a summary line and
// returns its metrics: path_ess (without resampling) or smc_final_ess (SMC), log_z,
// resampling_events, and for MALA the acceptance and step size per temperature. The samples
// and weights go to *result when given.
nlohmann::json run_annealing(const Model& model, const AnnealOptions& options, int64_t count, uint64_t seed,
                             AnnealResult* result = nullptr);

void save_checkpoint(torch::nn::Module& module, const std::string& path);
// Loads a checkpoint written by save_checkpoint; a missing file or one written for another
// configuration is an Error naming the file.
void load_checkpoint(torch::nn::Module& module, const std::string& path, torch::Device device);

void write_text_atomically(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);

}  // namespace mintjulep::cli
