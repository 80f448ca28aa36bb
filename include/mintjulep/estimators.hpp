#pragma once
// Importance-sampling estimators from log weights, accumulated in float64.
#include <torch/types.h>

namespace mintjulep {

struct ImportanceSummary {
  int64_t num_samples = 0;  // weights given
  int64_t num_finite = 0;   // weights used (non-finite log w are dropped and counted)
  double ess = 0;           // normalised effective sample size (sum w)^2 / (S sum w^2), S = num_samples
  double log_z = 0;         // log mean w over all samples (dropped ones count as w = 0)
};

// Non-finite entries (NaN, +-inf) count as w = 0: a sample whose energy could not be evaluated
// carries no weight; +inf (a numerical overflow) would otherwise dominate every estimate.
ImportanceSummary summarize_log_weights(const torch::Tensor& log_w);

}  // namespace mintjulep
