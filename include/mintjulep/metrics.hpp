#pragma once
// Sample-quality metrics against reference samples: one-dimensional Wasserstein distances
// between weighted empirical distributions (energies, interatomic distances), importance
// weight summaries with the standard error of log Z, and the integrated autocorrelation time
// of (reference) time series. Everything is computed in float64 on the CPU.
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace mintjulep {

class Energy;

// Normalised weights (sum 1) from log weights: w = softmax(log_w) over the finite entries,
// 0 where log_w is NaN or +-inf. Throws Error when no entry is finite (all weights zero).
torch::Tensor normalized_weights(const torch::Tensor& log_w);

// W_p (p >= 1) between the weighted empirical distributions sum_i a_w[i] delta(a[i]) and
// sum_j b_w[j] delta(b[j]) on the real line: the exact optimal-transport distance
// (int_0^1 |F^-1(u) - G^-1(u)|^p du)^(1/p), integrated piecewise over the merged levels of the
// two cumulative distribution functions. Weights need not be normalised; they must be finite
// and >= 0 with a positive sum (zero-weight points take no part). An undefined weight tensor
// means equal weights. Equal values are merged (their weights added) before the CDFs are
// formed, so integer weights give exactly what the explicitly repeated samples give.
double wasserstein_1d(const torch::Tensor& a, const torch::Tensor& a_w, const torch::Tensor& b,
                      const torch::Tensor& b_w, double p);

// The N (N - 1) / 2 distances |x_i - x_j|, i < j, of each configuration: (B, N, n) -> (B, P).
torch::Tensor pairwise_distances(const torch::Tensor& x);

// The interatomic-distance W2: the 1D W2 between the distributions of all pair distances of
// weighted configurations x (B, N, n) and y (C, N, n), each configuration's P distances
// carrying its weight / P. Undefined weights mean equal weights.
double distance_wasserstein2(const torch::Tensor& x, const torch::Tensor& x_w, const torch::Tensor& y,
                             const torch::Tensor& y_w);

// Importance weights w = exp(log_w); non-finite log w count as w = 0 (a sample whose energy
// could not be evaluated).
struct WeightSummary {
  int64_t num_samples = 0;  // S, all samples given
  int64_t num_zero = 0;     // non-finite log w, counted as w = 0
  double ess = 0;           // normalised ESS (sum w)^2 / (S sum w^2), in (0, 1]
  double effective_count = 0;  // ess * S
  double log_z = 0;         // log mean w over all S samples
  // Delta-method standard error of log mean w: sd(w) / (sqrt(S) mean(w)) with the sample sd
  // (divisor S - 1), i.e. sqrt((1 / ess - 1) / (S - 1)). 0 for S = 1.
  double log_z_se = 0;
};

// Throws Error when no weight is finite.
WeightSummary summarize_weights(const torch::Tensor& log_w);

// SMC: the standard error of log Z_hat from the spread of its independent populations. log_w
// holds consecutive populations of `population` samples (the last may be smaller and is left
// out of the spread), each population's log mean w being its own log Z_hat. Returns
// sd_i(Z_i) / (sqrt(P) mean_i(Z_i)) over the P full populations, NaN when P < 2. (The
// delta-method se of WeightSummary ignores the resamplings and does not hold for SMC.)
double population_log_z_se(const torch::Tensor& log_w, int64_t population);

// The integrated autocorrelation time of a stationary series, with Sokal's automatic window.
struct Autocorrelation {
  int64_t frames = 0;    // F, per replica
  int64_t replicas = 0;  // R
  // tau = 1 + 2 sum_{t=1}^{M} rho(t) in frames, rho the normalised autocorrelation averaged over
  // replicas (each replica's own mean and variance), M the smallest window with M >= c tau(M)
  // (M = F - 1 if none).
  double tau = 0;
  int64_t window = 0;
  // frames >= 50 tau (emcee's criterion). Below it the estimate is unreliable and usually too
  // small: each replica's own mean absorbs correlations longer than the series.
  bool long_enough = false;
  // Sokal's standard error of tau, tau sqrt(2 (2 M + 1) / (F R)).
  double tau_se = 0;
  double ess_per_replica = 0;  // F / tau
  double ess = 0;              // R F / tau
  torch::Tensor tau_per_replica;  // (R,): the same estimate from each replica alone
};

// series: (F,) or (F, R) (frames x independent replicas), F >= 2; c: Sokal's window constant
// (5 is the usual choice). A replica with zero variance throws Error.
Autocorrelation autocorrelation(const torch::Tensor& series, double c = 5.0);

// Metrics of weighted samples against unweighted reference samples.
struct SampleMetrics {
  WeightSummary weights;
  double energy_w1 = 0, energy_w2 = 0;  // between the weighted energy distributions, kT
  double distance_w2 = 0;               // interatomic-distance W2 (system length unit)
};

// positions (S, N, n), log_w (S,), energies (S,) of the samples; reference positions (C, N, n)
// and energies (C,), equally weighted. Non-finite log w count as w = 0; samples with zero
// weight take no part in the distances (and may have non-finite energies).
SampleMetrics compare_samples(const torch::Tensor& positions, const torch::Tensor& log_w,
                              const torch::Tensor& energies, const torch::Tensor& reference_positions,
                              const torch::Tensor& reference_energies);

// Configurations read from an .npz for comparison: the output of `mintjulep sample` (positions
// (S, N, n) with log_w and energies) or of `mintjulep md` (positions (F, R, N, n), energies
// (F, R), equally weighted after the burn-in).
struct WeightedConfigurations {
  torch::Tensor positions;  // (M, N, n), float64
  torch::Tensor log_w;      // (M,): zeros for md frames and references
  torch::Tensor energies;   // (M,), kT
  bool trajectory = false;  // read from md frames
  int64_t frames = 0, replicas = 0;  // md: frames after the burn-in, replicas
  torch::Tensor energy_series;       // md: (frames, replicas)
};

struct ReadConfigurationsOptions {
  std::string role = "--in";       // how messages name the file ("--in", "--reference", ...)
  bool reference = false;          // must be equally weighted: log_w absent or constant
  int64_t burn_in = 0;             // md frames dropped from the start of each replica
  std::string burn_in_name = "--burn-in";  // how messages name burn_in
};

// Reads `path`; energies missing from the file are computed with `energy` (nullptr: they must
// be in the file), whose particle count and dimension the positions must also match. Throws
// Error naming the file and the fix for anything malformed.
WeightedConfigurations read_weighted_configurations(const std::string& path, const Energy* energy,
                                                    const ReadConfigurationsOptions& options);

}  // namespace mintjulep
