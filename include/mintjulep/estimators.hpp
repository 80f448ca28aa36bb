#pragma once
// Importance-sampling estimators from log weights, accumulated in float64.
#include <torch/types.h>

#include <string>

namespace mintjulep {

struct ImportanceSummary {
  int64_t num_samples = 0;  // weights given
  int64_t num_finite = 0;   // weights used (non-finite log w are dropped and counted)
  // The dropped ones by cause: log w NaN (an energy, gradient or density that could not be
  // evaluated), +inf (overflow), -inf (an infinite energy, e.g. overlapping particles: a true
  // zero weight).
  int64_t num_nan = 0, num_overflow = 0, num_zero = 0;
  double ess = 0;           // normalised effective sample size (sum w)^2 / (S sum w^2), S = num_samples
  double log_z = 0;         // log mean w over all samples (dropped ones count as w = 0)
};

// Non-finite entries (NaN, +-inf) count as w = 0: a sample whose energy could not be evaluated
// carries no weight; +inf (a numerical overflow) would otherwise dominate every estimate.
ImportanceSummary summarize_log_weights(const torch::Tensor& log_w);

// One phrase for logs: "all 2000 weights finite" or "3 of 2000 weights dropped (weight 0):
// 2 NaN (energy or density not evaluable), 1 +inf (log w overflow)". An annealing run that
// counted more NaN / +inf log w than the final weights hold (SMC zeroes them at resampling
// steps) passes its counts, and the phrase names the difference.
std::string describe_dropped_weights(const ImportanceSummary& summary, int64_t run_nan = 0,
                                     int64_t run_overflow = 0);

}  // namespace mintjulep
