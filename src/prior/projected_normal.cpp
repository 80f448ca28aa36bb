#include <mintjulep/projected_normal.hpp>

#include <cmath>

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kSwitch = -5.0;  // below: continued fraction; above: erfcx
constexpr int kFractionTerms = 60;

// log erfcx(z) for any real z without overflow: erfcx(z) = 2 exp(z^2) - erfcx(-z) for z < 0.
torch::Tensor log_erfcx(const torch::Tensor& z) {
  // Both branches see clamped inputs so that neither produces inf (whose gradient would
  // poison the other branch through torch::where).
  auto zp = z.clamp_min(0.0), zn = z.clamp_max(0.0);
  auto positive = torch::log(torch::special_erfcx(zp));
  auto negative = zn * zn + torch::log(2.0 - torch::exp(-zn * zn) * torch::special_erfcx(-zn));
  return torch::where(z >= 0, positive, negative);
}

}  // namespace

torch::Tensor log_g(const torch::Tensor& a, int k) {
  TORCH_CHECK(k >= 0 && k <= 2, "log_g supports k = 0, 1, 2");
  const double sqrt2 = std::sqrt(2.0);
  // Direct branch: g_k / g_0 = r_k with r_1 = 1/g_0 + a, r_2 = a r_1 + 1.
  auto a_hi = a.clamp_min(kSwitch);
  auto log_g0 = 0.5 * std::log(kPi / 2) + log_erfcx(-a_hi / sqrt2);
  torch::Tensor direct = log_g0;
  if (k >= 1) {
    auto r1 = torch::exp(-log_g0) + a_hi;
    direct = k == 1 ? log_g0 + torch::log(r1) : log_g0 + torch::log(a_hi * r1 + 1.0);
  }
  // Continued fraction for a < -5 (z = -a/sqrt 2 > 3.5): with the Laplace fraction
  // sqrt(pi) erfcx(z) = 1 / (z + T_1), T_j = (j/2) / (z + T_{j+1}),
  //   g_0 = 1 / (sqrt2 (z + T_1)), g_1 = T_1 / (z + T_1), g_2 = T_2 / (sqrt2 (z + T_2)(z + T_1)),
  // which never subtracts nearly equal numbers. Evaluated only where needed: it costs 120 ops.
  auto low = (a < kSwitch).reshape(-1).nonzero().squeeze(1);
  if (low.numel() == 0) return direct;
  auto z = -a.reshape(-1).index_select(0, low) / sqrt2;
  auto tail = torch::zeros_like(z);
  torch::Tensor t2;
  for (int j = kFractionTerms; j >= 1; --j) {
    tail = (0.5 * j) / (z + tail);
    if (j == 2) t2 = tail;
  }
  const torch::Tensor& t1 = tail;
  torch::Tensor fraction;
  if (k == 0) fraction = -torch::log(sqrt2 * (z + t1));
  if (k == 1) fraction = torch::log(t1) - torch::log(z + t1);
  if (k == 2) fraction = torch::log(t2) - torch::log(sqrt2 * (z + t2) * (z + t1));
  return direct.reshape(-1).index_copy(0, low, fraction).reshape(a.sizes());
}

torch::Tensor log_projected_normal(const torch::Tensor& cos_angle, const torch::Tensor& kappa,
                                   int64_t d) {
  return -0.5 * static_cast<double>(d) * std::log(2 * kPi) - 0.5 * kappa +
         log_g(kappa.sqrt() * cos_angle, static_cast<int>(d - 1));
}

torch::Tensor log_lognormal(const torch::Tensor& r, const torch::Tensor& rho,
                            const torch::Tensor& sigma) {
  auto log_r = torch::log(r);
  return -log_r - torch::log(sigma) - 0.5 * std::log(2 * kPi) -
         (log_r - rho).pow(2) / (2 * sigma.pow(2));
}

torch::Tensor log_particle_density(const torch::Tensor& v, const torch::Tensor& mu,
                                   const torch::Tensor& kappa, const torch::Tensor& rho,
                                   const torch::Tensor& sigma) {
  const int64_t d = v.size(-1);
  auto r = v.pow(2).sum(-1).sqrt();
  auto cos_angle = (v * mu).sum(-1) / r;
  return log_projected_normal(cos_angle, kappa, d) + log_lognormal(r, rho, sigma) -
         static_cast<double>(d - 1) * torch::log(r);
}

torch::Tensor sample_particle_density(const torch::Tensor& mu, const torch::Tensor& kappa,
                                      const torch::Tensor& rho, const torch::Tensor& sigma) {
  auto z = torch::randn(mu.sizes(), mu.options());
  auto v = mu + z / kappa.sqrt().unsqueeze(-1);
  auto direction = v / v.pow(2).sum(-1, true).sqrt();
  auto e = torch::randn(rho.sizes(), rho.options());
  return direction * torch::exp(rho + sigma * e).unsqueeze(-1);
}

}  // namespace mintjulep
