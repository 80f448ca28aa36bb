#pragma once
// Pair-potential systems: the double well and Lennard-Jones clusters, with the soft-core
// annealing path of DESIGN.md §2.
#include <mintjulep/energy.hpp>

namespace mintjulep {

// Distances r_ij for all pairs i < j (row-major order), shape (B, N(N-1)/2).
torch::Tensor pair_distances(const torch::Tensor& x);

// Soft-core Lennard-Jones along the path, per pair with minimum position rm and depth eps:
//   r~ = r + rm (1 - t),  V = eps ( [(r~/rm)^-6 - (2-t)^-6]^2 - (2-t)^-12 ),
// evaluated as eps u (u - 2c), u = (r~/rm)^-6, c = (2-t)^-6, which at t = 1 is
// eps [(rm/r)^12 - 2 (rm/r)^6] exactly.
torch::Tensor soft_core_lennard_jones(const torch::Tensor& r, double rm, double eps, double t);

// V = sum_{i<j} [b (d - d0)^2 + c (d - d0)^4] / tau; no t-dependence.
class DoubleWellEnergy : public Energy {
 public:
  DoubleWellEnergy(std::string name, int64_t num_particles, int64_t dim, double b = -4.0,
                   double c = 0.9, double d0 = 4.0, double tau = 1.0);
  std::string name() const override { return name_; }
  int64_t num_particles() const override { return num_particles_; }
  int64_t dim() const override { return dim_; }
  torch::Tensor energy(const torch::Tensor& x, double t = 1.0) const override;
  bool closed_form_energy_and_gradient(const torch::Tensor& x, double t, torch::Tensor& value,
                                       torch::Tensor& grad) const override;
  double length_scale() const override { return d0_; }

 private:
  std::string name_;
  int64_t num_particles_, dim_;
  double b_, c_, d0_, tau_;
};

// V = pair_weight * sum_{i<j} eps[(rm/r)^12 - 2 (rm/r)^6] (soft-core along the path)
//     + harmonic * 0.5 * sum_i |x_i - mean x|^2.
// pair_weight = 2 reproduces a sum over ordered pairs i != j.
class LennardJonesEnergy : public Energy {
 public:
  LennardJonesEnergy(std::string name, int64_t num_particles, int64_t dim, double pair_weight,
                     double harmonic, double eps = 1.0, double rm = 1.0);
  std::string name() const override { return name_; }
  int64_t num_particles() const override { return num_particles_; }
  int64_t dim() const override { return dim_; }
  torch::Tensor energy(const torch::Tensor& x, double t = 1.0) const override;
  bool closed_form_energy_and_gradient(const torch::Tensor& x, double t, torch::Tensor& value,
                                       torch::Tensor& grad) const override;
  double length_scale() const override { return rm_; }

 private:
  std::string name_;
  int64_t num_particles_, dim_;
  double pair_weight_, harmonic_, eps_, rm_;
};

}  // namespace mintjulep
