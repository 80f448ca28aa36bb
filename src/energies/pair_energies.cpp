#include <mintjulep/error.hpp>
#include <mintjulep/pair_energies.hpp>

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

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

namespace {

// sum_{i<j} term(r_ij) and its gradient in x for every configuration of x (B, N, D) on CPU,
// float64, parallel over configurations. term(r, v, dv_dr) sets the pair energy and its
// derivative. Coordinates are copied per configuration into one row per dimension, and each
// particle's pairs go in two passes: distances and pair terms into arrays (loops without
// reductions, which the compiler vectorises), then the sums. A pair at r = 0 contributes no
// gradient (the direction is undefined there; autograd would give NaN).
template <int D, typename PairTerm>
void pair_sum(const torch::Tensor& x, PairTerm term, torch::Tensor& value, torch::Tensor& grad) {
  const int64_t B = x.size(0), N = x.size(1);
  value = torch::empty({B}, x.options());
  grad = torch::empty_like(x);
  const double* xp = x.data_ptr<double>();
  double* vp = value.data_ptr<double>();
  double* gp = grad.data_ptr<double>();
  at::parallel_for(0, B, 8, [&](int64_t begin, int64_t end) {
    const auto n = static_cast<size_t>(N);
    std::vector<double> c(D * n), g(D * n), d(D * n), r(n), e(n), f(n);
    for (int64_t b = begin; b < end; ++b) {
      const double* xb = xp + b * N * D;
      for (int64_t i = 0; i < N; ++i)
        for (int k = 0; k < D; ++k) c[k * n + i] = xb[i * D + k];
      std::fill(g.begin(), g.end(), 0.0);
      double v = 0;
      for (int64_t i = 0; i < N; ++i) {
        for (int64_t j = i + 1; j < N; ++j) {
          double r2 = 0;
          for (int k = 0; k < D; ++k) {
            d[k * n + j] = c[k * n + i] - c[k * n + j];
            r2 += d[k * n + j] * d[k * n + j];
          }
          r[j] = std::sqrt(r2);
        }
        for (int64_t j = i + 1; j < N; ++j) {
          double de;
          term(r[j], e[j], de);
          f[j] = r[j] > 0 ? de / r[j] : 0.0;
        }
        double gi[D] = {};
        for (int64_t j = i + 1; j < N; ++j) {
          v += e[j];
          for (int k = 0; k < D; ++k) {
            gi[k] += f[j] * d[k * n + j];
            g[k * n + j] -= f[j] * d[k * n + j];
          }
        }
        for (int k = 0; k < D; ++k) g[k * n + i] += gi[k];
      }
      vp[b] = v;
      double* gb = gp + b * N * D;
      for (int64_t i = 0; i < N; ++i)
        for (int k = 0; k < D; ++k) gb[i * D + k] = g[k * n + i];
    }
  });
}

// pair_sum for x of any floating type with 2 or 3 dimensions; false for other devices or dims.
template <typename PairTerm>
bool closed_form_pair_sum(const torch::Tensor& x, PairTerm term, torch::Tensor& value, torch::Tensor& grad) {
  if (!x.device().is_cpu() || (x.size(2) != 2 && x.size(2) != 3)) return false;
  auto x64 = x.detach().to(torch::kFloat64).contiguous();
  if (x.size(2) == 2) pair_sum<2>(x64, term, value, grad);
  else pair_sum<3>(x64, term, value, grad);
  return true;
}

}  // namespace

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

bool DoubleWellEnergy::closed_form_energy_and_gradient(const torch::Tensor& x, double t,
                                                       torch::Tensor& value, torch::Tensor& grad) const {
  check_positions(x);
  check_path_time(t);
  const double b = b_ / tau_, c = c_ / tau_, d0 = d0_;
  return closed_form_pair_sum(
      x,
      [=](double r, double& v, double& dv_dr) {
        const double d = r - d0, d2 = d * d;
        v = b * d2 + c * d2 * d2;
        dv_dr = 2 * b * d + 4 * c * d2 * d;
      },
      value, grad);
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

bool LennardJonesEnergy::closed_form_energy_and_gradient(const torch::Tensor& x, double t,
                                                         torch::Tensor& value, torch::Tensor& grad) const {
  check_positions(x);
  check_path_time(t);
  // As soft_core_lennard_jones: u = (r~/rm)^-6, V = w eps u (u - 2c), dV/dr = -12 w eps u (u - c) / r~.
  const double scale = pair_weight_ * eps_, shift = rm_ * (1.0 - t), c = std::pow(2.0 - t, -6.0);
  const double inv_rm = 1.0 / rm_;
  const bool handled = closed_form_pair_sum(
      x,
      [=](double r, double& v, double& dv_dr) {
        const double inv = 1.0 / ((r + shift) * inv_rm), inv2 = inv * inv, u = inv2 * inv2 * inv2;
        v = scale * u * (u - 2.0 * c);
        dv_dr = -12.0 * scale * u * (u - c) * inv * inv_rm;
      },
      value, grad);
  if (handled && harmonic_ != 0.0) {
    // 0.5 k sum_i |x_i - mean x|^2; its gradient k (x_i - mean x) (the mean's own terms cancel).
    auto x64 = x.detach().to(torch::kFloat64);
    auto centred = x64 - x64.mean(1, /*keepdim=*/true);
    value = value + 0.5 * harmonic_ * centred.pow(2).sum({1, 2});
    grad = grad + harmonic_ * centred;
  }
  return handled;
}

}  // namespace mintjulep
