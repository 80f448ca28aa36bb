#pragma once
// Building a sampler from a run configuration, and saving/loading its checkpoints in a run
// folder (prior.pt after stage 1, sampler.pt after stage 2, config.toml, metrics.json).
#include <mintjulep/config.hpp>
#include <mintjulep/energy.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/mint_prior.hpp>

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
JulepSampler make_ais_baseline(const Model& model);

void save_checkpoint(torch::nn::Module& module, const std::string& path);
// Loads a checkpoint written by save_checkpoint; a missing file or one written for another
// configuration is an Error naming the file.
void load_checkpoint(torch::nn::Module& module, const std::string& path, torch::Device device);

void write_text_atomically(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);

}  // namespace mintjulep::cli
