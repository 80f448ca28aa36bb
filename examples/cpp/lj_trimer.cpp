// A user-defined energy sampled through the MintJulep library: three Lennard-Jones particles in
// 2D held together by a harmonic trap,
//   U(x) = eps sum_{i<j} [(rm/r_ij)^12 - 2 (rm/r_ij)^6] + k/2 sum_i |x_i - mean x|^2   (in kT),
// with a soft core along the annealing path. A Gaussian prior is placed on the minima (harmonic
// basins), MALA annealing takes it to exp(-U), and the estimated log Z is compared with log Z
// computed by quadrature.
//
//   lj_trimer [--samples M] [--steps T] [--seed S]
#include <mintjulep/model.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace {

// A deep well and a tight trap: nearly all of the mass lies in the triangle minimum.
constexpr double kEps = 6.0, kRm = 1.0, kTrap = 8.0;

// The pair term of r^2 (plain doubles, for the quadrature).
double lj(double r2) {
  const double s = kRm * kRm / r2, u = s * s * s;
  return kEps * u * (u - 2);
}

class TrappedTrimer : public mintjulep::Energy {
 public:
  std::string name() const override { return "trapped-lj-trimer"; }
  int64_t num_particles() const override { return 3; }
  int64_t dim() const override { return 2; }
  double length_scale() const override { return kRm; }

  // V(x, t): with the soft core r~ = r + rm (1 - t), V = eps u (u - 2c), u = (r~/rm)^-6,
  // c = (2 - t)^-6, the pair term stays finite for overlapping particles at t < 1 and keeps
  // its minimum at r = rm; V(x, 1) = U(x). Batched over x (B, 3, 2), differentiable (autograd).
  torch::Tensor energy(const torch::Tensor& x, double t) const override {
    const auto pairs = std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {0, 2}, {1, 2}};
    const double c = std::pow(2.0 - t, -6);
    auto v = torch::zeros({x.size(0)}, x.options());
    for (auto [i, j] : pairs) {
      auto d = x.select(1, i) - x.select(1, j);
      auto r = (d.pow(2).sum(-1) + 1e-12).sqrt() + kRm * (1.0 - t);
      auto u = (r / kRm).pow(-6);
      v = v + kEps * u * (u - 2 * c);
    }
    auto centred = x - x.mean(1, /*keepdim=*/true);
    return v + 0.5 * kTrap * centred.pow(2).sum({1, 2});
  }
};

// log Z = log of the integral of exp(-U) over the positions of particles 1 and 2 relative to
// particle 0 (the anchor, MintJulep's convention). U is invariant under rotations and the
// reflection y -> (y_x, -y_y): particle 1 on the positive x axis at distance a, particle 2 in the
// upper half plane, Z = 2 pi * 2 * int a da int dy2 exp(-U). Midpoint rule, h = 0.03: exp(-U)
// is smooth and negligible beyond the extent.
double quadrature_log_z() {
  const double h = 0.03, extent = 6.0;
  const int n = static_cast<int>(extent / h);
  double sum = 0;
  for (int ia = 0; ia < n; ++ia) {
    const double a = (ia + 0.5) * h;
    const double u01 = lj(a * a);
    double inner = 0;
    for (int ix = -n; ix < n; ++ix) {
      const double bx = (ix + 0.5) * h;
      for (int iy = 0; iy < n; ++iy) {
        const double by = (iy + 0.5) * h;
        const double r02 = bx * bx + by * by, r12 = (bx - a) * (bx - a) + by * by;  // squared
        // sum_i |x_i - mean|^2 = (r01^2 + r02^2 + r12^2) / 3 for three particles.
        const double trap = 0.5 * kTrap * (a * a + r02 + r12) / 3.0;
        const double u = u01 + lj(r02) + lj(r12) + trap;
        if (u < 700) inner += std::exp(-u);
      }
    }
    sum += a * inner;
  }
  return std::log(4 * M_PI * sum * h * h * h);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t samples = 4000, steps = 50;
  uint64_t seed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--samples")) samples = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps")) steps = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: lj_trimer [--samples M] [--steps T] [--seed S]\n");
      return 2;
    }
  }
  try {
    // The run configuration in code (the keys of a TOML config, docs/CONFIG.md).
    mintjulep::RunConfig config;
    config.seed = seed;
    config.prior.family = "gaussian";
    config.prior.init = "harmonic";  // components on the distinct minima, Hessian covariances
    config.prior.components = 12;
    config.anneal.method = "mala";
    config.anneal.steps = steps;
    config.anneal.pilot = 200;
    config.anneal.chunk = samples;

    auto energy = std::make_shared<TrappedTrimer>();
    mintjulep::Model model = mintjulep::build_model(energy, config, torch::kCPU);

    mintjulep::SamplingOptions prior_only;
    prior_only.method = "prior";
    prior_only.count = samples;
    prior_only.seed = seed;
    const auto q = mintjulep::sample(model, prior_only);

    mintjulep::SamplingOptions annealing;
    annealing.method = "mala";
    annealing.count = samples;
    annealing.seed = seed + 1;
    const auto s = mintjulep::sample(model, annealing);

    // Standard error of log Z from the normalised ESS: Var[w] / E[w]^2 = 1 / ESS - 1 per sample.
    const double se = std::sqrt(std::max(1.0 / s.ess - 1.0, 0.0) / static_cast<double>(samples));
    const double reference = quadrature_log_z();
    const double deviation = std::abs(s.log_z - reference) / std::max(se, 1e-3);
    std::printf("prior alone:     ESS %.2f%% on %lld samples, log Z %.4f\n", 100 * q.ess,
                static_cast<long long>(samples), q.log_z);
    std::printf("MALA annealing:  ESS %.2f%% on %lld samples, log Z %.4f +- %.4f (T = %lld)\n", 100 * s.ess,
                static_cast<long long>(samples), s.log_z, se, static_cast<long long>(steps));
    std::printf("quadrature:      log Z %.4f\n", reference);
    const bool finite = std::isfinite(s.ess) && std::isfinite(s.log_z) && s.ess > 0;
    std::printf("%s: annealing and quadrature differ by %.2f standard errors\n",
                finite && deviation < 4 ? "agree" : "DISAGREE", deviation);
    return finite && deviation < 4 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lj_trimer: error: %s\n", e.what());
    return 2;
  }
}
