// The internal family of the Mint prior (DESIGN.md §3c): each component a full Gaussian in
// unconstrained internal coordinates of the molecule's Z-matrix.
//
// Coordinates c = (r_1, r_2, theta_2, (r_i, theta_i, phi_i)_i), D = 3N - 6. Component k maps
// them to u in R^D by
//   u = log r                                   du/dr     = 1 / r
//   u = logit(theta / pi)                       du/dtheta = pi / (theta (pi - theta))
//   u = tan(delta / 2), delta = wrap(phi - c_k) du/dphi   = (1 + u^2) / 2
// (c_k: the component's torsion centres; tan(delta/2) maps (-pi, pi) one-to-one onto R), so
//   f_k(c) = N(u_k(c); m_k, (U_k^T U_k)^-1) prod |du/dc|
// is an exactly normalised density on (0, inf)^L x (0, pi)^A x circle^T. With the volume
// element dy = exp(log_volume(c)) dR dc (ZMatrix::log_volume, R uniform) and R_s negating
// every torsion,
//   log q(y) = log(1/2 sum_s sum_k pi_k f_k(R_s c)) - log_volume(c).
// The "frame coordinates" z of this family (used by the harmonic initialisation) are
// (log r, logit(theta / pi), phi): u about the torsion centre c_k = phi* is z with the torsions
// replaced by tan((phi - phi*) / 2) ~ (phi - phi*) / 2.
#include <mintjulep/error.hpp>
#include <mintjulep/mint_prior.hpp>

#include <fmt/format.h>

#include <cmath>

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;

torch::Tensor normalize_rows(const torch::Tensor& v) { return v / v.pow(2).sum(-1, true).sqrt(); }

}  // namespace

void MintPriorImpl::setup_internal() {
  const int64_t K = options_.components, M = options_.num_free;
  check(options_.dim == 3, "the internal prior family is for molecules in 3 dimensions");
  check(options_.anchor >= 0, "the internal prior family needs the anchor's particle index (options.anchor)");
  auto particle = [&](int64_t row) { return row < options_.anchor ? row : row + 1; };
  zmatrix_ = ZMatrix(M + 1, options_.anchor, {particle(options_.frame[0]), particle(options_.frame[1])},
                     options_.bonds);
  const int64_t D = zmatrix_.dim(), T = zmatrix_.num_placed();
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  length_index_ = register_buffer("length_index", torch::tensor(zmatrix_.length_index(), torch::kLong));
  angle_index_ = register_buffer("angle_index", torch::tensor(zmatrix_.angle_index(), torch::kLong));
  torsion_index_ = register_buffer("torsion_index", torch::tensor(zmatrix_.torsion_index(), torch::kLong));
  auto sign = torch::ones({D}, f64);
  sign.index_fill_(0, torsion_index_, -1.0);
  reflect_sign_ = register_buffer("reflect_sign", sign);
  // Until an initialisation sets them: bonds of length `radius`, tetrahedral angles, random
  // torsion centres; scales sigma (lengths, angles) and 0.5 (torsions, ~1 rad).
  auto m = torch::zeros({K, D}, f64);
  m.index_fill_(1, length_index_, std::log(options_.radius));
  const double tetrahedral = std::acos(-1.0 / 3.0) / kPi;
  m.index_fill_(1, angle_index_, std::log(tetrahedral / (1 - tetrahedral)));
  mean = register_parameter("mean", m);
  torsion_centre = register_parameter("torsion_centre", kPi * (2 * torch::rand({K, T}, f64) - 1));
  auto log_sd = torch::full({D}, std::log(options_.sigma), f64);
  log_sd.index_fill_(0, torsion_index_, std::log(0.5));
  log_precision_diag = register_parameter("log_precision_diag", (-log_sd).expand({K, D}).clone());
  precision_upper = register_parameter("precision_upper", torch::zeros({K, D, D}, f64));
}

torch::Tensor MintPriorImpl::internal_z(const torch::Tensor& c) const {
  const auto li = length_index_.to(c.device()), ai = angle_index_.to(c.device());
  auto z = c.index_copy(1, li, c.index_select(1, li).log());
  auto theta = c.index_select(1, ai) / kPi;
  return z.index_copy(1, ai, theta.log() - (1 - theta).log());
}

torch::Tensor MintPriorImpl::internal_coordinates_of(const torch::Tensor& z) const {
  const auto li = length_index_.to(z.device()), ai = angle_index_.to(z.device());
  auto c = z.index_copy(1, li, z.index_select(1, li).exp());
  return c.index_copy(1, ai, kPi * torch::sigmoid(z.index_select(1, ai)));
}

torch::Tensor MintPriorImpl::internal_log_jacobian(const torch::Tensor& z) const {
  // log |dc/dz| = sum log r + sum log(theta (pi - theta) / pi).
  auto a = z.index_select(1, angle_index_.to(z.device()));
  return z.index_select(1, length_index_.to(z.device())).sum(1) +
         (std::log(kPi) + torch::log_sigmoid(a) + torch::log_sigmoid(-a)).sum(1);
}

std::pair<torch::Tensor, torch::Tensor> MintPriorImpl::internal_terms(const torch::Tensor& y) {
  const int64_t B = y.size(0), D = frame_dim(), K = options_.components;
  const int64_t T = zmatrix_.num_placed();
  auto c = zmatrix_.coordinates(y);
  auto z = internal_z(c);  // (B, D)
  const auto ti = torsion_index_.to(z.device());
  auto phi = z.index_select(1, ti);  // (B, T)
  // Torsions of both reflections about each component's centres: u = tan(wrap(s phi - c_k) / 2).
  auto delta = torch::cat({phi, -phi}, 0).unsqueeze(0) - torsion_centre.unsqueeze(1);  // (K, 2B, T)
  auto u_torsion = torch::tan(0.5 * torch::atan2(delta.sin(), delta.cos()));
  auto u = torch::cat({z, z}, 0).unsqueeze(0).expand({K, 2 * B, D}).index_copy(2, ti, u_torsion);
  auto whitened = torch::matmul(precision_factor(), (u - mean.unsqueeze(1)).transpose(1, 2));  // (K, D, 2B)
  auto log_normal = -0.5 * D * std::log(2 * kPi) + log_precision_diag.sum(1, true) -
                    0.5 * whitened.pow(2).sum(1);                                           // (K, 2B)
  auto log_torsion_jacobian = torch::log1p(u_torsion.pow(2)).sum(2) - T * std::log(2.0);  // (K, 2B)
  // |du/dc| of the lengths and angles: 1/r and pi / (theta (pi - theta)) = 1 / |dc/dz|.
  auto common = -internal_log_jacobian(z) - zmatrix_.log_volume(c) - std::log(2.0);  // (B,)
  auto terms = torch::log_softmax(logits, 0).unsqueeze(1) + log_normal + log_torsion_jacobian +
               torch::cat({common, common}).unsqueeze(0);
  return {terms, u};
}

torch::Tensor MintPriorImpl::internal_log_prob(const torch::Tensor& y) {
  const int64_t B = y.size(0), K = options_.components;
  auto terms = internal_terms(y).first;  // (K, 2B): s = +1 in the first B columns
  return torch::logsumexp(terms.view({K, 2, B}).flatten(0, 1), 0);
}

torch::Tensor MintPriorImpl::internal_sample(const torch::Tensor& k) {
  const int64_t count = k.numel();
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(logits.device());
  auto u = draw_gaussian(k);  // (count, D)
  const auto ti = torsion_index_.to(u.device());
  // Invert the maps: phi = c_k + 2 atan(u); the reflection s negates every torsion.
  auto phi = torsion_centre.index_select(0, k) + 2 * torch::atan(u.index_select(1, ti));
  auto s = 2 * torch::randint(0, 2, {count, 1}, f64) - 1;
  auto y = zmatrix_.positions(internal_coordinates_of(u.index_copy(1, ti, s * phi)));
  // Uniform orientation: rows e1, e2, e3 of a random rotation.
  auto e1 = normalize_rows(torch::randn({count, 3}, f64));
  auto g = torch::randn({count, 3}, f64);
  auto e2 = normalize_rows(g - (g * e1).sum(-1, true) * e1);
  auto frame = torch::stack({e1, e2, torch::cross(e1, e2, -1)}, 1);
  return torch::matmul(y, frame);
}

torch::Tensor MintPriorImpl::internal_centres() const {
  // z of each component's centre: u = m_k mapped back, torsions c_k + 2 atan(m_k).
  const auto ti = torsion_index_.to(mean.device());
  return mean.index_copy(1, ti, torsion_centre + 2 * torch::atan(mean.index_select(1, ti)));
}

torch::Tensor MintPriorImpl::draw_gaussian(const torch::Tensor& k) {
  const int64_t count = k.numel(), D = frame_dim();
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(logits.device());
  // m_k + U_k^-1 e, in chunks that keep the (chunk, D, D) factors small.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / (D * D));
  auto factor = precision_factor();
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < count; start += chunk) {
    auto kc = k.narrow(0, start, std::min(chunk, count - start));
    auto e = torch::randn({kc.numel(), D, 1}, f64);
    auto solved = at::linalg_solve_triangular(factor.index_select(0, kc), e, /*upper=*/true,
                                                  /*left=*/true, /*unitriangular=*/false);
    parts.push_back(mean.index_select(0, kc) + solved.squeeze(-1));
  }
  return torch::cat(parts, 0);
}

torch::Tensor MintPriorImpl::internal_frame_coordinates(const torch::Tensor& y) const {
  return internal_z(zmatrix_.coordinates(y));
}

torch::Tensor MintPriorImpl::internal_from_frame_coordinates(const torch::Tensor& z) const {
  return zmatrix_.positions(internal_coordinates_of(z));
}

torch::Tensor MintPriorImpl::internal_log_frame_jacobian(const torch::Tensor& z) const {
  // q(y) = p_c(c) / exp(log_volume(c)) and p_z(z) = p_c(c) |dc/dz|.
  return -zmatrix_.log_volume(internal_coordinates_of(z)) - internal_log_jacobian(z);
}

torch::Tensor MintPriorImpl::em_step(const torch::Tensor& y, const torch::Tensor& log_w, double strength,
                                     const torch::Tensor& given_log_q, double split_below) {
  check(internal(), "em_step needs the internal prior family");
  check(y.dim() == 3 && log_w.dim() == 1 && log_w.size(0) == y.size(0) && y.size(0) >= 2,
        "em_step needs configurations (B, M, n) and one log weight per configuration");
  check(strength >= 0, "em_step needs strength >= 0");
  check(split_below >= 0 && split_below < 1, "em_step needs split_below in [0, 1)");
  torch::NoGradGuard no_grad;
  const int64_t B = y.size(0), K = options_.components, D = frame_dim(), M = options_.num_free, n = options_.dim;
  auto y64 = y.to(torch::kFloat64);
  auto finite = torch::isfinite(log_w);
  check(finite.any().item<bool>(), "em_step: no finite log weight");
  // Normalised weights over the draws, and log q of each (the responsibilities' denominator).
  auto log_wbar = torch::log_softmax(log_w.to(torch::kFloat64).masked_fill(~finite, -INFINITY), 0);
  check(!given_log_q.defined() || given_log_q.sizes() == log_w.sizes(), "em_step: one log q per configuration");
  auto log_q = given_log_q.defined() ? given_log_q.to(torch::kFloat64) : log_prob(y64);
  const int64_t G = symmetry_count();
  const auto perms = G > 1 ? symmetries_.to(y.device()) : torch::Tensor();
  auto f64 = mean.options();
  auto W = torch::zeros({K}, f64), W2 = torch::zeros({K}, f64);
  auto S1 = torch::zeros({K, D}, f64), S2 = torch::zeros({K, D, D}, f64);
  // Chunks of draws x relabellings of at most ~8192 configurations (K x 2 x D doubles each).
  const int64_t chunk = std::max<int64_t>(1, 8192 / G);
  for (int64_t start = 0; start < B; start += chunk) {
    const int64_t size = std::min(chunk, B - start);
    auto yc = y64.narrow(0, start, size);
    auto relabelled = G > 1 ? relabel(yc, perms).reshape({G * size, M, n}) : yc;
    auto [terms, u] = internal_terms(relabelled);  // (K, 2 G size), (K, 2 G size, D)
    // log of wbar(x) / (G q(x)), per column: columns are (s, g, draw).
    auto per_draw = (log_wbar.narrow(0, start, size) - log_q.narrow(0, start, size)).repeat({2 * G}) -
                    std::log(static_cast<double>(G));
    auto rho = (terms + per_draw.unsqueeze(0)).exp().nan_to_num(0.0);  // wbar(x) r(k, s, g | x)
    W += rho.sum(1);
    W2 += rho.pow(2).sum(1);
    S1 += (rho.unsqueeze(-1) * u).sum(1);
    S2 += torch::matmul((u * rho.unsqueeze(-1)).transpose(1, 2), u);
  }
  // Effective samples per component, and the shrinkage towards the current parameters.
  auto effective = (W.pow(2) / W2).nan_to_num(0.0);
  auto keep = strength / (effective + strength);  // (K): 1 = keep the current component
  auto safe_W = W.clamp_min(1e-300).unsqueeze(-1);
  auto m_fit = S1 / safe_W;
  auto c_fit = S2 / safe_W.unsqueeze(-1) - m_fit.unsqueeze(2) * m_fit.unsqueeze(1);
  // The covariance keeps its principal axes (the Hessian's, after harmonic initialisation) and
  // only rescales the variance along each: a full covariance measured on a few dozen heavy
  // weights in D = 60 dimensions collapses the directions they happen not to spread along.
  // The axes and variances come from the precision U^T U = V diag(mu) V^T: Sigma = V diag(1/mu) V^T.
  auto factor = precision_factor();
  auto [precision_eigenvalues, axes] = at::linalg_eigh(torch::matmul(factor.transpose(1, 2), factor));
  auto lambda = precision_eigenvalues.reciprocal();                                    // (K, D) variances
  auto measured = (axes * torch::matmul(c_fit, axes)).sum(1) / lambda;                 // (K, D) variance ratios
  auto k1 = keep.view({K, 1});
  auto ratio = torch::where(effective.view({K, 1}) > 0, (1 - k1) * measured + k1, torch::ones_like(measured));
  auto m_new = torch::where(effective.view({K, 1}) > 0, (1 - k1) * m_fit + k1 * mean, mean);
  // The new precision V diag(1 / (lambda ratio)) V^T = U^T U, U^T its lower Cholesky factor.
  auto p_new = torch::matmul(axes * (lambda * ratio).reciprocal().unsqueeze(1), axes.transpose(1, 2));
  auto upper = at::linalg_cholesky(0.5 * (p_new + p_new.transpose(1, 2))).transpose(1, 2);
  // Weights: the measured responsibilities, shrunk the same way over all draws.
  const double total = (W.sum().pow(2) / W2.sum()).item<double>();
  const double keep_weights = strength / (total + strength);
  auto pi_new = (1 - keep_weights) * W / W.sum() + keep_weights * weights();
  auto centre = torsion_centre.clone();
  if (split_below > 0) {
    // Components left with under split_below of the largest weight are re-seeded: the heaviest
    // components each give one such slot half of their weight and split along the principal
    // axis where the weighted draws are widest relative to the component, the two halves one
    // standard deviation to either side. Later steps fit both halves.
    auto order = std::get<1>(pi_new.sort(0, /*descending=*/true)).cpu();
    auto dead = (pi_new < split_below * pi_new.max()).cpu();
    std::vector<int64_t> parents, slots;
    for (int64_t r = 0; r < K; ++r) {
      const int64_t k = order[r].item<int64_t>();
      (dead[k].item<bool>() ? slots : parents).push_back(k);
    }
    const size_t pairs = std::min(parents.size(), slots.size());
    for (size_t i = 0; i < pairs; ++i) {
      const int64_t p = parents[i], c = slots[i];
      const int64_t a = measured[p].argmax().item<int64_t>();
      auto offset = (lambda[p][a] * ratio[p][a]).sqrt() * axes[p].select(1, a);  // (D)
      m_new[c].copy_(m_new[p] + offset);
      m_new[p].sub_(offset);
      upper[c].copy_(upper[p]);
      centre[c].copy_(centre[p]);
      pi_new[p].mul_(0.5);
      pi_new[c].copy_(pi_new[p]);
    }
  }
  mean.copy_(m_new);
  torsion_centre.copy_(centre);
  log_precision_diag.copy_(upper.diagonal(0, 1, 2).log());
  precision_upper.copy_(upper.triu(1));
  logits.copy_(pi_new.clamp_min(1e-300).log());
  return effective;
}

void MintPriorImpl::set_internal_components(const torch::Tensor& means, const torch::Tensor& precisions,
                                            const torch::Tensor& log_weights) {
  const int64_t K = options_.components, D = frame_dim();
  check(means.sizes() == torch::IntArrayRef({K, D}) && precisions.sizes() == torch::IntArrayRef({K, D, D}) &&
            log_weights.sizes() == torch::IntArrayRef({K}),
        fmt::format("gaussian components need means ({0}, {1}), precisions ({0}, {1}, {1}), weights ({0})", K, D));
  torch::NoGradGuard no_grad;
  auto m = means.to(mean.options());
  const auto ti = torsion_index_.to(m.device());
  // phi - phi* = 2 atan(u) ~ 2 u: the precision in u is J P J with J = 2 on the torsions.
  auto scale = torch::ones({D}, m.options()).index_fill(0, ti, 2.0);
  auto precision_u = precisions.to(mean.options()) * scale.unsqueeze(1) * scale.unsqueeze(0);
  // Sigma^-1 = L L^T (Cholesky) = U^T U with U = L^T upper triangular.
  auto upper = at::linalg_cholesky(precision_u).transpose(1, 2);
  torsion_centre.copy_(m.index_select(1, ti));
  mean.copy_(m.index_fill(1, ti, 0.0));
  log_precision_diag.copy_(upper.diagonal(0, 1, 2).log());
  precision_upper.copy_(upper.triu(1));
  logits.copy_(log_weights.to(logits.options()) - log_weights.max().item<double>());
}

}  // namespace mintjulep
