#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/metrics.hpp>

#include <fmt/format.h>
#include <torch/fft.h>

#include <cmath>
#include <limits>

namespace mintjulep {
namespace {

torch::Tensor as_double(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); }

// A weighted empirical distribution on the line: its distinct values in increasing order and
// the CDF at each, F[k] = (weight of values <= values[k]) / total, with F[last] = 1 exactly.
struct Cdf {
  torch::Tensor values, levels;
};

Cdf weighted_cdf(const torch::Tensor& values, const torch::Tensor& weights, const char* which) {
  auto x = as_double(values).flatten();
  check(x.numel() > 0, fmt::format("Wasserstein distance: the {} sample is empty", which));
  auto w = weights.defined() ? as_double(weights).flatten() : torch::ones_like(x);
  check(w.numel() == x.numel(), fmt::format("Wasserstein distance: {} weights for {} {} values",
                                            w.numel(), x.numel(), which));
  check(torch::isfinite(w).all().item<bool>() && (w >= 0).all().item<bool>(),
        fmt::format("Wasserstein distance: the {} weights must be finite and >= 0", which));
  auto used = w > 0;
  x = x.masked_select(used);
  w = w.masked_select(used);
  check(x.numel() > 0, fmt::format("Wasserstein distance: every {} weight is zero", which));
  check(torch::isfinite(x).all().item<bool>(),
        fmt::format("Wasserstein distance: a {} value with positive weight is not finite", which));
  auto sorted = x.sort();
  auto sorted_x = std::get<0>(sorted);
  auto sorted_w = w.index_select(0, std::get<1>(sorted));
  // Merge equal values: integer weights then give bit for bit the CDF of repeated samples.
  auto unique = torch::unique_consecutive(sorted_x, /*return_inverse=*/true);
  auto distinct = std::get<0>(unique);
  auto merged = torch::zeros({distinct.size(0)}, torch::kFloat64).index_add_(0, std::get<1>(unique), sorted_w);
  auto cumulative = merged.cumsum(0);
  auto levels = cumulative / cumulative[-1];
  levels[-1] = 1.0;
  return {distinct, levels};
}

}  // namespace

torch::Tensor normalized_weights(const torch::Tensor& log_w) {
  auto lw = as_double(log_w).flatten();
  auto finite = torch::isfinite(lw);
  check(finite.any().item<bool>(), "no finite log weight: every importance weight is zero");
  auto masked = torch::where(finite, lw, torch::full_like(lw, -std::numeric_limits<double>::infinity()));
  return torch::softmax(masked, 0);
}

double wasserstein_1d(const torch::Tensor& a, const torch::Tensor& a_w, const torch::Tensor& b,
                      const torch::Tensor& b_w, double p) {
  check(p >= 1, fmt::format("Wasserstein distance: p = {} must be >= 1", p));
  const Cdf fa = weighted_cdf(a, a_w, "first");
  const Cdf fb = weighted_cdf(b, b_w, "second");
  // On each interval (t[k-1], t[k]] between consecutive merged levels both quantile functions
  // are constant: F^-1(u) is the first value whose level is >= t[k].
  auto t = std::get<0>(torch::cat({fa.levels, fb.levels}).sort());
  auto dt = t - torch::cat({torch::zeros({1}, torch::kFloat64), t.narrow(0, 0, t.size(0) - 1)});
  auto ia = torch::searchsorted(fa.levels, t).clamp_max(fa.values.size(0) - 1);
  auto ib = torch::searchsorted(fb.levels, t).clamp_max(fb.values.size(0) - 1);
  auto gap = (fa.values.index_select(0, ia) - fb.values.index_select(0, ib)).abs();
  const double integral = (dt * (p == 1 ? gap : gap.pow(p))).sum().item<double>();
  return p == 1 ? integral : std::pow(integral, 1.0 / p);
}

torch::Tensor pairwise_distances(const torch::Tensor& x) {
  check(x.dim() == 3 && x.size(1) >= 2,
        fmt::format("pair distances need configurations (B, N, n) with N >= 2, got {} dimensions", x.dim()));
  auto pos = as_double(x);
  const int64_t n = pos.size(1);
  auto pairs = torch::triu_indices(n, n, 1);
  auto i = pairs[0], j = pairs[1];
  auto out = torch::empty({pos.size(0), i.size(0)}, torch::kFloat64);
  // In chunks: the (chunk, P, n) differences of large batches would not fit in memory at once.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, i.size(0) * pos.size(2)));
  for (int64_t start = 0; start < pos.size(0); start += chunk) {
    const int64_t len = std::min(chunk, pos.size(0) - start);
    auto block = pos.narrow(0, start, len);
    out.narrow(0, start, len).copy_((block.index_select(1, i) - block.index_select(1, j)).norm(2, -1));
  }
  return out;
}

double distance_wasserstein2(const torch::Tensor& x, const torch::Tensor& x_w, const torch::Tensor& y,
                             const torch::Tensor& y_w) {
  check(x.dim() == 3 && y.dim() == 3 && x.size(1) == y.size(1) && x.size(2) == y.size(2),
        fmt::format("distance W2: configurations of different shapes ({} and {})",
                    fmt::join(x.sizes(), "x"), fmt::join(y.sizes(), "x")));
  auto dx = pairwise_distances(x), dy = pairwise_distances(y);
  auto spread = [](const torch::Tensor& d, const torch::Tensor& w) -> torch::Tensor {
    if (!w.defined()) return {};
    check(w.numel() == d.size(0),
          fmt::format("distance W2: {} weights for {} configurations", w.numel(), d.size(0)));
    return as_double(w).flatten().unsqueeze(1).expand_as(d);  // the P distances share the weight
  };
  return wasserstein_1d(dx, spread(dx, x_w), dy, spread(dy, y_w), 2.0);
}

WeightSummary summarize_weights(const torch::Tensor& log_w) {
  const ImportanceSummary s = summarize_log_weights(log_w);
  check(s.num_samples > 0, "no samples: log_w is empty");
  check(s.num_finite > 0,
        fmt::format("no finite log weight among {} samples: every importance weight is zero", s.num_samples));
  WeightSummary out;
  out.num_samples = s.num_samples;
  out.num_zero = s.num_samples - s.num_finite;
  out.ess = s.ess;
  out.effective_count = s.ess * static_cast<double>(s.num_samples);
  out.log_z = s.log_z;
  // se^2 = var(w) / (S mean(w)^2) = (S sum w^2 / (sum w)^2 - 1) / (S - 1) = (1/ess - 1) / (S - 1).
  if (s.num_samples > 1)
    out.log_z_se = std::sqrt(std::max(0.0, 1.0 / s.ess - 1.0) / static_cast<double>(s.num_samples - 1));
  return out;
}

double population_log_z_se(const torch::Tensor& log_w, int64_t population) {
  check(population >= 1, fmt::format("population size must be >= 1, got {}", population));
  auto lw = as_double(log_w).flatten();
  const int64_t P = lw.size(0) / population;
  if (P < 2) return std::numeric_limits<double>::quiet_NaN();
  lw = torch::where(torch::isfinite(lw), lw, torch::full_like(lw, -std::numeric_limits<double>::infinity()));
  auto log_z = torch::logsumexp(lw.narrow(0, 0, P * population).view({P, population}), 1) -
               std::log(static_cast<double>(population));  // (P,)
  auto z = torch::exp(log_z - log_z.max());                  // Z_i up to a common factor
  return (z.std() / (std::sqrt(static_cast<double>(P)) * z.mean())).item<double>();
}

Autocorrelation autocorrelation(const torch::Tensor& series, double c) {
  auto x = as_double(series);
  if (x.dim() == 1) x = x.unsqueeze(1);
  check(x.dim() == 2, fmt::format("autocorrelation: expected a series (F,) or (F, R), got {} dimensions", x.dim()));
  const int64_t frames = x.size(0), replicas = x.size(1);
  check(frames >= 2 && replicas >= 1, fmt::format("autocorrelation: {} frames; need at least 2", frames));
  check(c > 0, "autocorrelation: the window constant c must be positive");
  check(torch::isfinite(x).all().item<bool>(), "autocorrelation: the series has non-finite values");
  x = x - x.mean(0, /*keepdim=*/true);
  // Autocovariance of each replica by FFT, zero-padded to avoid wrap-around (biased estimator,
  // divisor F, as in Sokal's and emcee's estimators).
  int64_t n = 1;
  while (n < 2 * frames) n <<= 1;
  auto f = torch::fft::rfft(x, n, 0);
  auto acov = torch::fft::irfft(f * f.conj(), n, 0).narrow(0, 0, frames);
  auto var = acov[0];
  check((var > 0).all().item<bool>(), "autocorrelation: a replica's series is constant (zero variance)");
  auto rho = acov / var;  // (F, R), rho[0] = 1
  auto lags = torch::arange(frames, torch::kFloat64).unsqueeze(1);

  // tau(M) = 1 + 2 sum_{t=1}^{M} rho(t) = 2 cumsum(rho)(M) - 1; M = first lag with M >= c tau(M).
  auto choose = [&](const torch::Tensor& r) {  // r: (F, K) -> (tau (K,), window (K,))
    auto taus = 2 * r.cumsum(0) - 1;
    auto ok = lags >= c * taus;
    auto window = torch::where(ok.any(0), ok.to(torch::kInt).argmax(0),
                               torch::full({r.size(1)}, frames - 1, torch::kLong));
    return std::make_pair(taus.gather(0, window.unsqueeze(0)).squeeze(0), window);
  };
  Autocorrelation out;
  out.frames = frames;
  out.replicas = replicas;
  auto [tau, window] = choose(rho.mean(1, /*keepdim=*/true));
  out.tau = tau.item<double>();
  out.window = window.item<int64_t>();
  out.long_enough = static_cast<double>(frames) >= 50 * out.tau;
  const double total = static_cast<double>(frames * replicas);
  out.tau_se = out.tau * std::sqrt(2.0 * (2.0 * static_cast<double>(out.window) + 1.0) / total);
  out.ess_per_replica = static_cast<double>(frames) / out.tau;
  out.ess = total / out.tau;
  out.tau_per_replica = choose(rho).first;
  return out;
}

SampleMetrics compare_samples(const torch::Tensor& positions, const torch::Tensor& log_w,
                              const torch::Tensor& energies, const torch::Tensor& reference_positions,
                              const torch::Tensor& reference_energies) {
  check(positions.dim() == 3, fmt::format("samples: positions must be (S, N, n), got {} dimensions", positions.dim()));
  check(reference_positions.dim() == 3,
        fmt::format("reference: positions must be (C, N, n), got {} dimensions", reference_positions.dim()));
  const int64_t s = positions.size(0);
  check(log_w.numel() == s && energies.numel() == s,
        fmt::format("samples: {} configurations but {} log weights and {} energies", s, log_w.numel(),
                    energies.numel()));
  check(reference_energies.numel() == reference_positions.size(0),
        fmt::format("reference: {} configurations but {} energies", reference_positions.size(0),
                    reference_energies.numel()));
  check(positions.size(1) == reference_positions.size(1) && positions.size(2) == reference_positions.size(2),
        fmt::format("samples have {} particles in {} dimensions, the reference {} in {}", positions.size(1),
                    positions.size(2), reference_positions.size(1), reference_positions.size(2)));
  SampleMetrics out;
  out.weights = summarize_weights(log_w);
  // w / max w = exp(log w - max log w): equal log weights give exactly 1, so that equally
  // weighted samples compare with an unweighted reference without rounding in the levels.
  auto lw = as_double(log_w).flatten();
  auto finite = torch::isfinite(lw);
  auto w = torch::where(finite, (lw - lw.masked_select(finite).max()).exp(), torch::zeros_like(lw));
  auto used = w > 0;
  auto u = as_double(energies).flatten().masked_select(used);
  w = w.masked_select(used);
  auto x = as_double(positions).index({used});
  auto ref_u = as_double(reference_energies).flatten();
  check(torch::isfinite(u).all().item<bool>(), "samples: a sample with positive weight has a non-finite energy");
  check(torch::isfinite(ref_u).all().item<bool>(), "reference: non-finite energy");
  out.energy_w1 = wasserstein_1d(u, w, ref_u, {}, 1.0);
  out.energy_w2 = wasserstein_1d(u, w, ref_u, {}, 2.0);
  out.distance_w2 = distance_wasserstein2(x, w, reference_positions, {});
  return out;
}

}  // namespace mintjulep
