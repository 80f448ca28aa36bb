#include <mintjulep/estimators.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace mintjulep {

ImportanceSummary summarize_log_weights(const torch::Tensor& log_w) {
  auto lw = log_w.detach().to(torch::kCPU, torch::kFloat64).flatten();
  ImportanceSummary s;
  s.num_samples = lw.numel();
  auto finite = torch::isfinite(lw);
  s.num_finite = finite.sum().item<int64_t>();
  s.num_nan = torch::isnan(lw).sum().item<int64_t>();
  s.num_overflow = (lw == std::numeric_limits<double>::infinity()).sum().item<int64_t>();
  s.num_zero = s.num_samples - s.num_finite - s.num_nan - s.num_overflow;
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

std::string describe_dropped_weights(const ImportanceSummary& s, int64_t run_nan, int64_t run_overflow) {
  const int64_t dropped = s.num_samples - s.num_finite;
  std::string text;
  if (dropped == 0) {
    text = fmt::format("all {} weights finite", s.num_samples);
  } else {
    std::vector<std::string> causes;
    if (s.num_nan > 0) causes.push_back(fmt::format("{} NaN (energy or density not evaluable)", s.num_nan));
    if (s.num_overflow > 0) causes.push_back(fmt::format("{} +inf (log w overflow)", s.num_overflow));
    if (s.num_zero > 0) causes.push_back(fmt::format("{} -inf (infinite energy)", s.num_zero));
    text = fmt::format("{} of {} weights dropped (weight 0): {}", dropped, s.num_samples, fmt::join(causes, ", "));
  }
  if (run_nan > s.num_nan || run_overflow > s.num_overflow)
    text += fmt::format("; at resampling steps {} NaN and {} +inf log w were set to 0",
                        std::max<int64_t>(run_nan - s.num_nan, 0), std::max<int64_t>(run_overflow - s.num_overflow, 0));
  return text;
}

}  // namespace mintjulep
