#include <mintjulep/error.hpp>
#include <mintjulep/pair_energies.hpp>

#include <cmath>

namespace mintjulep {

torch::Tensor pair_distances(const torch::Tensor& x) {
  const int64_t n = x.size(1);
  auto pairs = torch::triu_indices(n, n, 1, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
  // Coordinates as (B, n, N): the pair differences (B, n, P) are then contiguous along the
  // pairs, which vectorises ~1.4x better than (B, P, n) with its short last dimension.
  auto xt = x.transpose(1, 2);
  auto diff = xt.index_select(2, pairs[0]) - xt.index_select(2, pairs[1]);
  return diff.pow(2).sum(1).sqrt();
}

torch::Tensor soft_core_lennard_jones(const torch::Tensor& r, double rm, double eps, double t) {
  const double c = std::pow(2.0 - t, -6.0);
  auto r_soft = r + rm * (1.0 - t);  // r~ = r exactly at t = 1
  auto u = (r_soft / rm).pow(-6);
  return eps * u * (u - 2.0 * c);
}

static void check_path_time(double t) {
  check(std::isfinite(t) && t >= 0.0 && t <= 1.0,
        "path time t = " + std::to_string(t) + " is outside [0, 1]; t = 1 is the target energy");
}

DoubleWellEnergy::DoubleWellEnergy(std::string name, int64_t num_particles, int64_t dim, double b,
                                   double c, double d0, double tau)
    : name_(std::move(name)), num_particles_(num_particles), dim_(dim), b_(b), c_(c), d0_(d0),
      tau_(tau) {}

torch::Tensor DoubleWellEnergy::energy(const torch::Tensor& x, double t) const {
  check_positions(x);
  check_path_time(t);
  auto d = pair_distances(x) - d0_;
  auto d2 = d * d;
  return ((b_ * d2 + c_ * d2 * d2) / tau_).sum(-1);
}

LennardJonesEnergy::LennardJonesEnergy(std::string name, int64_t num_particles, int64_t dim,
                                       double pair_weight, double harmonic, double eps, double rm)
    : name_(std::move(name)), num_particles_(num_particles), dim_(dim), pair_weight_(pair_weight),
      harmonic_(harmonic), eps_(eps), rm_(rm) {}

torch::Tensor LennardJonesEnergy::energy(const torch::Tensor& x, double t) const {
  check_positions(x);
  check_path_time(t);
  auto v = pair_weight_ * soft_core_lennard_jones(pair_distances(x), rm_, eps_, t).sum(-1);
  if (harmonic_ != 0.0) {
    auto centred = x - x.mean(1, /*keepdim=*/true);
    v = v + 0.5 * harmonic_ * centred.pow(2).sum({1, 2});
  }
  return v;
}

}  // namespace mintjulep
