#pragma once
// Shared helpers for the test suite: reproducible configurations, random symmetries and the
// devices the device-parametrised tests run on.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cmath>
#include <string>
#include <vector>

namespace mintjulep::testing {

// B configurations of N particles in n dimensions on a jittered cubic lattice with spacing
// `spacing`: no two particles closer than spacing - 2 * jitter * sqrt(n), so pair energies stay
// moderate.
inline torch::Tensor lattice_configurations(int64_t batch, int64_t n_particles, int64_t dim,
                                            double spacing, double jitter, uint64_t seed,
                                            torch::ScalarType dtype = torch::kFloat64) {
  torch::manual_seed(seed);
  const auto side = static_cast<int64_t>(std::ceil(std::pow(n_particles, 1.0 / dim)));
  auto grid = torch::arange(side, torch::kFloat64);
  auto mesh = dim == 2 ? torch::stack(torch::meshgrid({grid, grid}, "ij"), -1)
                       : torch::stack(torch::meshgrid({grid, grid, grid}, "ij"), -1);
  auto sites = mesh.reshape({-1, dim}).narrow(0, 0, n_particles) * spacing;
  auto x = sites.unsqueeze(0).expand({batch, n_particles, dim}).clone();
  x += jitter * (2 * torch::rand({batch, n_particles, dim}, torch::kFloat64) - 1);
  return x.to(dtype);
}

// A random orthogonal n x n matrix; a reflection (det = -1) when `reflect`.
inline torch::Tensor random_orthogonal(int64_t dim, bool reflect, uint64_t seed) {
  torch::manual_seed(seed);
  auto qr = at::linalg_qr(torch::randn({dim, dim}, torch::kFloat64));
  auto q = std::get<0>(qr);
  if ((torch::det(q).item<double>() < 0) != reflect) q.select(1, 0).neg_();
  return q;
}

// Draws `count` configurations y ~ p = N(0, s^2 I) of shape (count, M, n) (seeded) and returns
// the ratios q(y) / p(y), whose mean is 1 when log_q is a normalised density that p covers.
template <class LogQ>
torch::Tensor ratios_to_wide_gaussian(LogQ&& log_q, int64_t count, int64_t M, int64_t n, double s, uint64_t seed) {
  torch::manual_seed(seed);
  auto y = s * torch::randn({count, M, n}, torch::kFloat64);
  const double dof = static_cast<double>(M * n);
  auto log_p = -0.5 * y.pow(2).sum({1, 2}) / (s * s) - dof * (0.5 * std::log(2 * 3.14159265358979323846) + std::log(s));
  torch::NoGradGuard no_grad;
  return torch::exp(log_q(y) - log_p);
}

// Monte Carlo check of E[ratio] = 1 (a normalisation, or E_q[q'/q] for a sampler): the mean
// must be 1 within 3 standard errors, and the standard error below max_se so that the check
// has power.
inline ::testing::AssertionResult mean_is_one(const torch::Tensor& ratio, double max_se) {
  const double mean = ratio.mean().item<double>();
  const double se = ratio.std().item<double>() / std::sqrt(static_cast<double>(ratio.numel()));
  if (!(se < max_se))
    return ::testing::AssertionFailure() << "standard error " << se << " is not below " << max_se;
  if (!(std::abs(mean - 1.0) <= 3 * se))
    return ::testing::AssertionFailure() << "mean " << mean << " is not 1 within 3 standard errors (" << se << ")";
  return ::testing::AssertionSuccess() << "mean " << mean << ", standard error " << se;
}

inline double max_relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item<double>();
}

// The devices every device-parametrised test is instantiated for: "cpu" and "cuda". The cuda
// instances skip themselves (MINTJULEP_SKIP_UNLESS_DEVICE) where no GPU is present, so that
// every machine lists the same tests.
inline std::vector<std::string> test_devices() { return {"cpu", "cuda"}; }

inline bool device_available(const std::string& device) {
  return device == "cpu" || (device.rfind("cuda", 0) == 0 && torch::cuda::is_available());
}

// The devices this machine can run: cpu always, cuda when LibTorch sees a GPU.
inline std::vector<std::string> available_test_devices() {
  std::vector<std::string> out;
  for (const auto& d : test_devices())
    if (device_available(d)) out.push_back(d);
  return out;
}

}  // namespace mintjulep::testing

// In a test body or SetUp: skips the test where `device` (a std::string) cannot run.
#define MINTJULEP_SKIP_UNLESS_DEVICE(device)                                 \
  do {                                                                       \
    if (!::mintjulep::testing::device_available(device))                     \
      GTEST_SKIP() << "no " << (device) << " device: CUDA is not available"; \
  } while (false)
