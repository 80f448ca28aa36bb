#pragma once
// Internal to the library (and the command line tool): the annealing run of a model with its
// metrics as JSON, and text files of run folders (config.toml, metrics.json).
#include <mintjulep/model.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace mintjulep {

// Runs the annealing method of `options` on `count` chains (ula: the AIS baseline kernel; julep:
// the model's kernel; mala: the prior and energy alone), logs progress and a summary line and
// returns its metrics: path_ess (without resampling) or smc_final_ess (SMC), log_z,
// resampling_events, and for MALA the acceptance and step size per temperature. The samples
// and weights go to *result when given.
nlohmann::json run_annealing(const Model& model, const AnnealOptions& options, int64_t count, uint64_t seed,
                             AnnealResult* result = nullptr, const ChunkCache& cache = {});

void write_text_atomically(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);

}  // namespace mintjulep
