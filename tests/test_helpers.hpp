#pragma once
// Shared helpers for the test suite: reproducible configurations and random symmetries.
#include <torch/types.h>

#include <cmath>

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

inline double max_relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item<double>();
}

}  // namespace mintjulep::testing
