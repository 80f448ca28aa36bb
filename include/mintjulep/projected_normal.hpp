#pragma once
// Building blocks of the Mint prior (DESIGN.md §3), float64, batched and differentiable.
#include <torch/types.h>

namespace mintjulep {

// log g_k(a) for k = 0, 1, 2, where g_k(a) = int_0^inf r^k exp(-r^2/2 + a r) dr:
//   g_0(a) = sqrt(pi/2) erfcx(-a/sqrt 2), g_1 = 1 + a g_0, g_2 = a g_1 + g_0.
// Stable for all a: a continued fraction replaces the cancelling recursion for a < -5, and
// large positive a never overflows.
torch::Tensor log_g(const torch::Tensor& a, int k);

// log PN_d(theta; sqrt(kappa) mu) for unit theta, mu in R^d:
//   -(d/2) log(2 pi) - kappa/2 + log g_{d-1}(sqrt(kappa) theta . mu).
torch::Tensor log_projected_normal(const torch::Tensor& cos_angle, const torch::Tensor& kappa,
                                   int64_t d);

// log LN(r; rho, sigma) = -log r - log sigma - log(2 pi)/2 - (log r - rho)^2 / (2 sigma^2).
torch::Tensor log_lognormal(const torch::Tensor& r, const torch::Tensor& rho,
                            const torch::Tensor& sigma);

// The Cartesian density of one particle in d dimensions (the last dimension of v):
//   c(v) = PN_d(v/|v|; sqrt(kappa) mu) LN(|v|; rho, sigma) / |v|^(d-1).
// mu must be unit vectors; all parameters broadcast against v (without its last dimension).
torch::Tensor log_particle_density(const torch::Tensor& v, const torch::Tensor& mu,
                                   const torch::Tensor& kappa, const torch::Tensor& rho,
                                   const torch::Tensor& sigma);

// Draws v ~ c: direction of mu + z / sqrt(kappa), z ~ N(0, I_d); radius exp(rho + sigma e).
// Parameters have the batch shape of the result without its last dimension.
torch::Tensor sample_particle_density(const torch::Tensor& mu, const torch::Tensor& kappa,
                                      const torch::Tensor& rho, const torch::Tensor& sigma);

}  // namespace mintjulep
