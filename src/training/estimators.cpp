#include <mintjulep/estimators.hpp>

#include <cmath>
#include <limits>

namespace mintjulep {

ImportanceSummary summarize_log_weights(const torch::Tensor& log_w) {
  auto lw = log_w.detach().to(torch::kCPU, torch::kFloat64).flatten();
  ImportanceSummary s;
  s.num_samples = lw.numel();
  auto finite = torch::isfinite(lw);
  s.num_finite = finite.sum().item<int64_t>();
  if (s.num_finite == 0) {
    s.log_z = -std::numeric_limits<double>::infinity();
    return s;
  }
  auto used = lw.masked_select(finite);
  // ESS = exp(2 logsumexp(lw) - logsumexp(2 lw)) / S.
  const double lse = torch::logsumexp(used, 0).item<double>();
  const double lse2 = torch::logsumexp(2 * used, 0).item<double>();
  s.ess = std::exp(2 * lse - lse2) / static_cast<double>(s.num_samples);
  s.log_z = lse - std::log(static_cast<double>(s.num_samples));
  return s;
}

}  // namespace mintjulep
