#include <mintjulep/error.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/projected_normal.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;

torch::Tensor normalize_rows(const torch::Tensor& v) { return v / v.pow(2).sum(-1, true).sqrt(); }

// The frame orientation's reflection: multiplies the last coordinate by s.
torch::Tensor reflect_last(const torch::Tensor& v, double s) {
  if (s > 0) return v;
  auto n = v.size(-1);
  return torch::cat({v.narrow(-1, 0, n - 1), -v.narrow(-1, n - 1, 1)}, -1);
}

}  // namespace

MintPriorImpl::MintPriorImpl(MintPriorOptions options) : options_(options) {
  const int64_t K = options_.components, M = options_.num_free, n = options_.dim;
  check(n == 2 || n == 3, fmt::format("the Mint prior needs n = 2 or 3 dimensions, got {}", n));
  check(K >= 1, "the Mint prior needs at least one component");
  check(options_.radius > 0, "prior radius must be positive");
  if (options_.family == "isotropic") {  // no frame: any number of particles
    check(M >= 1, "the Mint prior needs at least 2 particles");
    check(K == 1, fmt::format("the isotropic prior family has one component; set [prior] components = 1 (got {})", K));
    if (options_.symmetries.size() > 1) setup_symmetries();
    const double scale = options_.scale > 0 ? options_.scale : options_.radius / std::sqrt(static_cast<double>(n));
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    logits = register_parameter("logits", torch::zeros({K}, f64));
    log_scale = register_parameter("log_scale", torch::full({1}, std::log(scale), f64));
    return;
  }
  check(M >= 2, "the Mint prior needs at least 3 particles (anchor and two frame particles)");
  const auto [f1, f2] = options_.frame;
  check(f1 >= 0 && f2 >= 0 && f1 < M && f2 < M && f1 != f2,
        fmt::format("frame particles ({}, {}) must be two different rows of y in 0..{}", f1, f2,
                    M - 1));
  check(options_.radius > 0 && options_.sigma > 0 && options_.kappa > 0,
        "prior radius, sigma and kappa must be positive");
  std::vector<int64_t> order = {f1, f2};
  for (int64_t i = 0; i < M; ++i)
    if (i != f1 && i != f2) order.push_back(i);
  std::vector<int64_t> inverse(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i) inverse[static_cast<size_t>(order[static_cast<size_t>(i)])] = i;
  order_ = register_buffer("order", torch::tensor(order, torch::kLong));
  inverse_order_ = register_buffer("inverse_order", torch::tensor(inverse, torch::kLong));

  check(options_.family == "independent" || options_.family == "gaussian" || options_.family == "internal" ||
            options_.family == "isotropic",
        fmt::format("prior family must be \"independent\", \"gaussian\", \"internal\" or \"isotropic\", got \"{}\"",
                    options_.family));
  check(options_.invariant || options_.family == "independent",
        "the gaussian, internal and isotropic prior families are always invariant; set invariant = true or family = "
        "\"independent\"");

  if (options_.symmetries.size() > 1) setup_symmetries();

  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  logits = register_parameter("logits", torch::zeros({K}, f64));
  if (internal()) {
    setup_internal();
    return;
  }
  if (gaussian()) {
    // R_s negates the last coordinate of every particle placed in the full frame.
    const int64_t D = frame_dim(), first_other = n == 2 ? 1 : 2, offset = n == 2 ? 1 : 3;
    auto sign = torch::ones({D}, f64);
    for (int64_t i = 0; i < M - first_other; ++i) sign[offset + n * i + n - 1] = -1.0;
    reflect_sign_ = register_buffer("reflect_sign", sign);
    // Random templates: particles at random directions, radii log-normal around `radius`.
    auto directions = normalize_rows(torch::randn({K, M, n}, f64));
    auto radii = options_.radius * torch::exp(options_.radius_spread * torch::randn({K, M, 1}, f64));
    mean = register_parameter("mean", frame_coordinates(directions * radii));
    // Initial scales: sigma for the log coordinates, sigma * radius for the Cartesian ones.
    auto log_sd = torch::full({D}, std::log(options_.sigma * options_.radius), f64);
    log_sd[0] = std::log(options_.sigma);
    if (n == 3) log_sd[2] = std::log(options_.sigma);
    log_precision_diag = register_parameter("log_precision_diag", (-log_sd).expand({K, D}).clone());
    precision_upper = register_parameter("precision_upper", torch::zeros({K, D, D}, f64));
    return;
  }
  mu = register_parameter("mu", normalize_rows(torch::randn({K, M, n}, f64)));
  log_kappa = register_parameter("log_kappa", torch::full({K}, std::log(options_.kappa), f64));
  rho = register_parameter(
      "rho", std::log(options_.radius) + options_.radius_spread * torch::randn({K, M}, f64));
  log_sigma = register_parameter("log_sigma", torch::full({K, M}, std::log(options_.sigma), f64));
}

void MintPriorImpl::initialize_from(const torch::Tensor& templates) {
  const int64_t K = options_.components, M = options_.num_free, n = options_.dim;
  check(templates.dim() == 3 && templates.size(0) == K && templates.size(1) == M &&
            templates.size(2) == n,
        fmt::format("prior templates must have shape ({}, {}, {})", K, M, n));
  check(!isotropic(), "the isotropic prior family has no component centres; use init = \"random\"");
  torch::NoGradGuard no_grad;
  auto y = templates.to(logits.options());
  if (internal()) {
    // Centres on the templates: torsion centres at their torsions, u-means at theirs.
    auto z = frame_coordinates(y);
    const auto ti = torsion_index_.to(z.device());
    torsion_centre.copy_(z.index_select(1, ti));
    mean.copy_(z.index_fill(1, ti, 0.0));
    return;
  }
  if (gaussian()) {
    mean.copy_(frame_coordinates(y));
    return;
  }
  torch::Tensor coords;  // (K, M, n) in the component frame (frame order), or global
  if (!options_.invariant) {
    coords = y;
  } else {
    auto yf = y.index_select(1, order_.to(y.device()));
    auto y1 = yf.select(1, 0);
    auto e1 = normalize_rows(y1);
    auto first = torch::zeros_like(y1);
    first.select(1, 0).copy_(y1.pow(2).sum(-1).sqrt());
    torch::Tensor frame, second;
    int64_t first_other;
    if (n == 2) {
      frame = torch::stack({e1, torch::stack({-e1.select(1, 1), e1.select(1, 0)}, 1)}, 1);
      first_other = 1;
    } else {
      auto y2 = yf.select(1, 1);
      auto a2 = (y2 * e1).sum(-1);
      auto u = y2 - a2.unsqueeze(-1) * e1;
      auto e2 = normalize_rows(u);
      frame = torch::stack({e1, e2, torch::cross(e1, e2, -1)}, 1);
      second = torch::stack({a2, u.pow(2).sum(-1).sqrt(), torch::zeros_like(a2)}, -1).unsqueeze(1);
      first_other = 2;
    }
    auto others = torch::matmul(yf.narrow(1, first_other, M - first_other), frame.transpose(1, 2));
    std::vector<torch::Tensor> parts = {first.unsqueeze(1)};
    if (n == 3) parts.push_back(second);
    parts.push_back(others);
    coords = torch::cat(parts, 1);
  }
  auto radius = coords.pow(2).sum(-1).sqrt().clamp_min(1e-12);
  mu.copy_(coords / radius.unsqueeze(-1));
  rho.copy_(radius.log());
}

torch::Tensor MintPriorImpl::unit_directions() const {
  check(!correlated() && !isotropic(),
        "unit_directions: the gaussian, internal and isotropic prior families have no per-particle directions");
  return normalize_rows(mu);
}

int64_t MintPriorImpl::frame_dim() const {
  const int64_t M = options_.num_free;
  return options_.dim == 2 ? 2 * M - 1 : 3 * M - 3;
}

torch::Tensor MintPriorImpl::frame_coordinates(const torch::Tensor& y) const {
  if (internal()) return internal_frame_coordinates(y);
  const int64_t M = options_.num_free, n = options_.dim;
  check(y.dim() == 3 && y.size(1) == M && y.size(2) == n,
        fmt::format("frame coordinates need y of shape (B, {}, {})", M, n));
  auto yf = y.to(torch::kFloat64).index_select(1, order_.to(y.device()));
  auto y1 = yf.select(1, 0);
  auto r1 = y1.pow(2).sum(-1).sqrt();
  auto e1 = y1 / r1.unsqueeze(-1);
  if (n == 2) {
    auto frame = torch::stack({e1, torch::stack({-e1.select(1, 1), e1.select(1, 0)}, 1)}, 1);
    auto others = torch::matmul(yf.narrow(1, 1, M - 1), frame.transpose(1, 2));
    return torch::cat({r1.log().unsqueeze(1), others.flatten(1)}, 1);
  }
  auto y2 = yf.select(1, 1);
  auto a2 = (y2 * e1).sum(-1);
  auto u = y2 - a2.unsqueeze(-1) * e1;
  auto b2 = u.pow(2).sum(-1).sqrt();
  auto e2 = u / b2.unsqueeze(-1);
  auto frame = torch::stack({e1, e2, torch::cross(e1, e2, -1)}, 1);
  auto others = torch::matmul(yf.narrow(1, 2, M - 2), frame.transpose(1, 2));
  return torch::cat({torch::stack({r1.log(), a2, b2.log()}, 1), others.flatten(1)}, 1);
}

torch::Tensor MintPriorImpl::log_frame_jacobian(const torch::Tensor& z) const {
  if (internal()) return internal_log_frame_jacobian(z);
  // Uniform orientation of e1 (1 / (2 pi r_1) or 1 / (4 pi r_1^2)), in 3D the uniform azimuth
  // of e2 (1 / (2 pi b_2)), and the log coordinates (1 / r_1, 1 / b_2).
  if (options_.dim == 2) return -std::log(2 * kPi) - 2 * z.select(1, 0);
  return -std::log(8 * kPi * kPi) - 3 * z.select(1, 0) - 2 * z.select(1, 2);
}

torch::Tensor MintPriorImpl::from_frame_coordinates(const torch::Tensor& z) const {
  if (internal()) return internal_from_frame_coordinates(z);
  const int64_t M = options_.num_free, n = options_.dim, B = z.size(0);
  check(z.dim() == 2 && z.size(1) == frame_dim(),
        fmt::format("frame coordinates must have shape (B, {})", frame_dim()));
  auto zero = torch::zeros({B}, z.options());
  std::vector<torch::Tensor> rows;
  int64_t first_other;
  if (n == 2) {
    rows.push_back(torch::stack({z.select(1, 0).exp(), zero}, 1));
    first_other = 1;
  } else {
    rows.push_back(torch::stack({z.select(1, 0).exp(), zero, zero}, 1));
    rows.push_back(torch::stack({z.select(1, 1), z.select(1, 2).exp(), zero}, 1));
    first_other = 2;
  }
  auto head = torch::stack(rows, 1);
  auto others = z.narrow(1, n == 2 ? 1 : 3, n * (M - first_other)).view({B, M - first_other, n});
  return torch::cat({head, others}, 1).index_select(1, inverse_order_.to(z.device()));
}

torch::Tensor MintPriorImpl::reflect_frame_coordinates(const torch::Tensor& z) const {
  check(correlated(), "reflect_frame_coordinates needs the gaussian or internal prior family");
  return z * reflect_sign_.to(z.device());
}

torch::Tensor MintPriorImpl::precision_factor() const {
  check(correlated(), "precision_factor needs the gaussian or internal prior family");
  return precision_upper.triu(1) + torch::diag_embed(log_precision_diag.exp());
}

void MintPriorImpl::set_gaussian_components(const torch::Tensor& means, const torch::Tensor& precisions,
                                            const torch::Tensor& log_weights) {
  const int64_t K = options_.components, D = frame_dim();
  check(correlated(), "set_gaussian_components needs the gaussian or internal prior family");
  check(means.sizes() == torch::IntArrayRef({K, D}) && precisions.sizes() == torch::IntArrayRef({K, D, D}) &&
            log_weights.sizes() == torch::IntArrayRef({K}),
        fmt::format("gaussian components need means ({0}, {1}), precisions ({0}, {1}, {1}), weights ({0})", K, D));
  if (internal()) return set_internal_components(means, precisions, log_weights);
  torch::NoGradGuard no_grad;
  // Sigma^-1 = L L^T (Cholesky) = U^T U with U = L^T upper triangular.
  auto upper = at::linalg_cholesky(precisions.to(mean.options())).transpose(1, 2);
  mean.copy_(means);
  log_precision_diag.copy_(upper.diagonal(0, 1, 2).log());
  precision_upper.copy_(upper.triu(1));
  logits.copy_(log_weights - log_weights.max());
}

void MintPriorImpl::setup_symmetries() {
  const int64_t N = options_.num_free + 1, anchor = options_.anchor;
  check(anchor >= 0 && anchor < N, "prior symmetries need the anchor's particle index");
  std::vector<int64_t> flat;
  for (const auto& g : options_.symmetries) {
    std::vector<int64_t> sorted = g;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < N; ++i)
      check(static_cast<int64_t>(sorted.size()) == N && sorted[static_cast<size_t>(i)] == i,
            fmt::format("a prior symmetry must be a permutation of the {} particle indices", N));
    flat.insert(flat.end(), g.begin(), g.end());
  }
  symmetries_ = torch::tensor(flat, torch::kLong).view({static_cast<int64_t>(options_.symmetries.size()), N});
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < N; ++i)
    if (i != anchor) rows.push_back(i);
  free_rows_ = torch::tensor(rows, torch::kLong);
}

torch::Tensor MintPriorImpl::with_anchor(const torch::Tensor& y) const {
  // (B, M, n) -> (B, N, n): the anchor's row (zeros) put back at its particle index.
  const int64_t B = y.size(0), n = y.size(2), anchor = options_.anchor;
  return torch::cat({y.narrow(1, 0, anchor), torch::zeros({B, 1, n}, y.options()),
                     y.narrow(1, anchor, y.size(1) - anchor)}, 1);
}

torch::Tensor MintPriorImpl::relabel(const torch::Tensor& y, const torch::Tensor& perms) const {
  // y (B, M, n) -> full positions with the anchor at the origin -> particles relabelled by each
  // of perms (P, N) -> anchored again on the particle now labelled as the anchor: (P, B, M, n).
  // A linear map of y with determinant +-1, so q(g y) is a normalised density for each g.
  const int64_t B = y.size(0), n = y.size(2), N = perms.size(1), P = perms.size(0), anchor = options_.anchor;
  auto xg = with_anchor(y).index_select(1, perms.flatten()).view({B, P, N, n}).transpose(0, 1);
  return (xg - xg.narrow(2, anchor, 1)).index_select(2, free_rows_.to(y.device()));
}

torch::Tensor MintPriorImpl::log_prob(const torch::Tensor& y) {
  const int64_t M = options_.num_free, n = options_.dim;
  check(y.dim() == 3 && y.size(1) == M && y.size(2) == n,
        fmt::format("prior input must have shape (B, {}, {})", M, n));
  return symmetrised_log_prob(y, /*path=*/false);
}

torch::Tensor MintPriorImpl::path_log_prob(const torch::Tensor& y) {
  check(y.dim() == 3 && y.size(1) == options_.num_free && y.size(2) == options_.dim,
        fmt::format("prior input must have shape (B, {}, {})", options_.num_free, options_.dim));
  return symmetrised_log_prob(y, /*path=*/true);
}

bool MintPriorImpl::path_log_prob_is_exact() const {
  return isotropic() || internal() || gaussian() || !options_.invariant || options_.dim != 3 ||
         options_.path_softening == 0;
}

torch::Tensor MintPriorImpl::symmetrised_log_prob(const torch::Tensor& y, bool path) {
  if (!symmetries_.defined()) return mixture_log_prob(y, path);
  // log q = logsumexp_g log q_mix(g y) - log G, over blocks of relabellings so that a block
  // holds at most ~2^16 configurations.
  const int64_t B = y.size(0), M = options_.num_free, n = options_.dim, G = symmetries_.size(0);
  const auto perms = symmetries_.to(y.device());
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(G, 65536 / std::max<int64_t>(B, 1)));
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < G; start += block) {
    const int64_t size = std::min(block, G - start);
    auto relabelled = relabel(y, perms.narrow(0, start, size)).reshape({size * B, M, n});
    parts.push_back(mixture_log_prob(relabelled, path).view({size, B}));
  }
  return torch::logsumexp(torch::cat(parts, 0), 0) - std::log(static_cast<double>(G));
}

torch::Tensor MintPriorImpl::mixture_log_prob(const torch::Tensor& y, bool path) {
  auto y64 = y.to(torch::kFloat64);
  if (isotropic()) {
    // sum over the D = M n coordinates of log N(y; 0, scale^2); smooth everywhere, nothing to soften.
    const double D = static_cast<double>(options_.num_free * options_.dim);
    return -0.5 * y64.pow(2).sum({1, 2}) * torch::exp(-2 * log_scale) - D * log_scale -
           0.5 * D * std::log(2 * kPi);
  }
  if (internal()) return internal_log_prob(y64);
  if (gaussian()) return gaussian_log_prob(y64);
  if (!options_.invariant) return fixed_log_prob(y64);
  // The gaussian and internal families vanish smoothly where their coordinates degenerate: only
  // the independent family's path end is softened.
  const double softening = path && options_.dim == 3 ? options_.path_softening * options_.radius : 0.0;
  return invariant_log_prob(y64.index_select(1, order_.to(y.device())), softening);
}

torch::Tensor MintPriorImpl::gaussian_log_prob(const torch::Tensor& y) {
  const int64_t B = y.size(0), D = frame_dim(), K = options_.components;
  auto z = frame_coordinates(y);
  // Both reflections at once: z and R_s z stacked into (2B, D).
  auto both = torch::cat({z, z * reflect_sign_.to(z.device())}, 0);
  auto u = precision_factor();
  torch::Tensor mahalanobis;  // (2B, K): |U_k (z - m_k)|^2
  if (D < K) {
    // z^T P_k z - 2 z^T P_k m_k + m_k^T P_k m_k with P_k = U_k^T U_k: two matrix products over
    // (2B, D^2) and (2B, D) instead of a (K, 2B, D) intermediate.
    auto precision = torch::matmul(u.transpose(1, 2), u);                  // (K, D, D)
    auto pm = torch::matmul(precision, mean.unsqueeze(-1)).squeeze(-1);   // (K, D)
    auto outer = (both.unsqueeze(2) * both.unsqueeze(1)).flatten(1);      // (2B, D^2)
    mahalanobis = (torch::matmul(outer, precision.flatten(1).t()) - 2 * torch::matmul(both, pm.t()) +
                   (mean * pm).sum(1).unsqueeze(0))
                      .clamp_min(0.0);
  } else {
    auto diff = both.unsqueeze(0) - mean.unsqueeze(1);                    // (K, 2B, D)
    mahalanobis = torch::matmul(u, diff.transpose(1, 2)).pow(2).sum(1).t();  // (2B, K)
  }
  auto log_normal = -0.5 * D * std::log(2 * kPi) + log_precision_diag.sum(1).unsqueeze(0) -
                    0.5 * mahalanobis;  // (2B, K)
  auto terms = (torch::log_softmax(logits, 0).unsqueeze(0) + log_normal).t().reshape({K, 2, B});
  return log_frame_jacobian(z) - std::log(2.0) + torch::logsumexp(terms.flatten(0, 1), 0);
}


torch::Tensor MintPriorImpl::fixed_log_prob(const torch::Tensor& y) {
  // sum_k pi_k prod_i c_ki(y_i) in the global frame.
  auto per_particle = log_particle_density(y.unsqueeze(1), unit_directions().unsqueeze(0),
                                           kappa().view({1, -1, 1}), rho.unsqueeze(0),
                                           sigma().unsqueeze(0));  // (B, K, M)
  return torch::logsumexp(torch::log_softmax(logits, 0) + per_particle.sum(-1), 1);
}

torch::Tensor MintPriorImpl::invariant_log_prob(const torch::Tensor& yf, double softening) {
  const int64_t n = options_.dim, M = options_.num_free;
  auto mu_unit = unit_directions();
  auto kap = kappa(), sig = sigma();
  auto y1 = yf.select(1, 0);
  auto r1 = y1.pow(2).sum(-1).sqrt();  // (B,)
  auto e1 = y1 / r1.unsqueeze(-1);
  // Per component: log pi_k + log LN(r_1; rho_k1, sigma_k1), shape (B, K).
  auto terms = torch::log_softmax(logits, 0) +
               log_lognormal(r1.unsqueeze(1), rho.select(1, 0), sig.select(1, 0));
  torch::Tensor base, frame, others;
  int64_t first_other;
  if (n == 2) {
    auto e2 = torch::stack({-e1.select(1, 1), e1.select(1, 0)}, 1);
    frame = torch::stack({e1, e2}, 1);  // (B, 2, 2), rows e1, e2
    base = -torch::log(2 * kPi * r1);
    first_other = 1;
  } else {
    auto y2 = yf.select(1, 1);
    auto a2 = (y2 * e1).sum(-1);
    auto u = y2 - a2.unsqueeze(-1) * e1;
    auto b2 = u.pow(2).sum(-1).sqrt();
    auto e2 = u / b2.unsqueeze(-1);
    frame = torch::stack({e1, e2, torch::cross(e1, e2, -1)}, 1);
    auto jacobian_b2 = softening > 0 ? (b2.pow(2) + softening * softening).sqrt() : b2;
    base = -torch::log(4 * kPi * r1.pow(2)) - torch::log(2 * kPi * jacobian_b2);
    // h_k(a, b) = c_k2((a, b)) + c_k2((a, -b)): the 2D density of frame particle 2, folded.
    auto mu2 = normalize_rows(mu_unit.select(1, 1).narrow(-1, 0, 2));  // (K, 2)
    auto ab = torch::stack({a2, b2}, -1).unsqueeze(1);                  // (B, 1, 2)
    auto flip = torch::tensor({1.0, -1.0}, ab.options());
    auto h = torch::logaddexp(
        log_particle_density(ab, mu2, kap, rho.select(1, 1), sig.select(1, 1)),
        log_particle_density(ab * flip, mu2, kap, rho.select(1, 1), sig.select(1, 1)));
    terms = terms + h;
    first_other = 2;
  }
  // Coordinates of the other particles in the frame: y_i' = (y_i . e1, y_i . e2 [, y_i . e3]).
  others = torch::matmul(yf.narrow(1, first_other, M - first_other), frame.transpose(1, 2));
  auto mu_o = mu_unit.narrow(1, first_other, M - first_other).unsqueeze(0);  // (1, K, M', n)
  auto rho_o = rho.narrow(1, first_other, M - first_other).unsqueeze(0);
  auto sig_o = sig.narrow(1, first_other, M - first_other).unsqueeze(0);
  std::vector<torch::Tensor> per_reflection;
  for (double s : {1.0, -1.0}) {
    auto v = reflect_last(others, s).unsqueeze(1);  // (B, 1, M', n)
    auto log_c = log_particle_density(v, mu_o, kap.view({1, -1, 1}), rho_o, sig_o).sum(-1);
    per_reflection.push_back(terms + log_c);
  }
  return base - std::log(2.0) + torch::logsumexp(torch::cat(per_reflection, 1), 1);
}

torch::Tensor MintPriorImpl::sample(int64_t count) {
  torch::NoGradGuard no_grad;
  auto w = weights();
  check(torch::isfinite(w).all().item<bool>(),
        "the prior's mixture weights are not finite (its training diverged): lower [mint] learning_rate");
  return sample_components(torch::multinomial(w, count, /*replacement=*/true));
}

torch::Tensor MintPriorImpl::gaussian_sample(const torch::Tensor& k) {
  const int64_t n = options_.dim, count = k.numel();
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(logits.device());
  auto z = draw_gaussian(k);  // m_k + U_k^-1 e
  auto s = torch::randint(0, 2, {count, 1}, f64);
  z = torch::where(s > 0.5, z, z * reflect_sign_.to(z.device()));
  // Uniform frame orientation: rows e1, e2 (, e3) of a random rotation; y_i = sum_c y'_ic e_c.
  auto e1 = normalize_rows(torch::randn({count, n}, f64));
  torch::Tensor frame;
  if (n == 2) {
    frame = torch::stack({e1, torch::stack({-e1.select(1, 1), e1.select(1, 0)}, 1)}, 1);
  } else {
    auto g = torch::randn({count, 3}, f64);
    auto e2 = normalize_rows(g - (g * e1).sum(-1, true) * e1);
    frame = torch::stack({e1, e2, torch::cross(e1, e2, -1)}, 1);
  }
  return torch::matmul(from_frame_coordinates(z), frame);
}

torch::Tensor MintPriorImpl::sample_components(const torch::Tensor& k) {
  auto y = mixture_sample(k);
  if (!symmetries_.defined()) return y;
  // A uniformly random relabelling of each draw: a sample of 1/|G| sum_g q(g y) (G is a group).
  const auto perms = symmetries_.to(y.device());
  const int64_t B = y.size(0), n = y.size(2), anchor = options_.anchor;
  auto g = torch::randint(0, perms.size(0), {B}, torch::TensorOptions().dtype(torch::kLong).device(y.device()));
  auto xg = with_anchor(y).gather(1, perms.index_select(0, g).unsqueeze(-1).expand({-1, -1, n}));
  return (xg - xg.narrow(1, anchor, 1)).index_select(1, free_rows_.to(y.device()));
}

torch::Tensor MintPriorImpl::mixture_sample(const torch::Tensor& k) {
  if (isotropic())  // reparameterised: differentiable in log_scale
    return log_scale.exp() * torch::randn({k.numel(), options_.num_free, options_.dim}, log_scale.options());
  if (internal()) return internal_sample(k);
  if (gaussian()) return gaussian_sample(k);
  const int64_t M = options_.num_free, n = options_.dim, count = k.numel();
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(logits.device());
  auto mu_k = unit_directions().index_select(0, k);  // (B, M, n)
  auto kappa_k = kappa().index_select(0, k);          // (B,)
  auto rho_k = rho.index_select(0, k), sig_k = sigma().index_select(0, k);
  auto kappa_rows = kappa_k.unsqueeze(1).expand({count, M});

  if (!options_.invariant) {
    auto y = sample_particle_density(mu_k, kappa_rows, rho_k, sig_k);
    return y;
  }
  auto e1 = normalize_rows(torch::randn({count, n}, f64));
  auto r1 = torch::exp(rho_k.select(1, 0) + sig_k.select(1, 0) * torch::randn({count}, f64));
  auto s = (2 * torch::randint(0, 2, {count}, f64) - 1).view({count, 1, 1});
  std::vector<torch::Tensor> rows = {r1.unsqueeze(-1) * e1};
  torch::Tensor e2, e3;
  int64_t first_other;
  if (n == 2) {
    e2 = torch::stack({-e1.select(1, 1), e1.select(1, 0)}, 1);
    first_other = 1;
  } else {
    auto mu2 = normalize_rows(mu_k.select(1, 1).narrow(-1, 0, 2));
    auto ab = sample_particle_density(mu2, kappa_k, rho_k.select(1, 1), sig_k.select(1, 1));
    auto a2 = ab.select(1, 0), b2 = ab.select(1, 1).abs();
    auto g = torch::randn({count, 3}, f64);  // e2: uniform azimuth around e1
    e2 = normalize_rows(g - (g * e1).sum(-1, true) * e1);
    e3 = torch::cross(e1, e2, -1);
    rows.push_back(a2.unsqueeze(-1) * e1 + b2.unsqueeze(-1) * e2);
    first_other = 2;
  }
  auto v = sample_particle_density(mu_k.narrow(1, first_other, M - first_other),
                                   kappa_rows.narrow(1, first_other, M - first_other),
                                   rho_k.narrow(1, first_other, M - first_other),
                                   sig_k.narrow(1, first_other, M - first_other));  // (B, M', n)
  auto others = v.select(2, 0).unsqueeze(-1) * e1.unsqueeze(1);
  if (n == 2) {
    others = others + s * v.select(2, 1).unsqueeze(-1) * e2.unsqueeze(1);
  } else {
    others = others + v.select(2, 1).unsqueeze(-1) * e2.unsqueeze(1) +
             s * v.select(2, 2).unsqueeze(-1) * e3.unsqueeze(1);
  }
  auto yf = torch::cat({torch::stack(rows, 1), others}, 1);
  return yf.index_select(1, inverse_order_.to(yf.device()));
}

torch::Tensor MintPriorImpl::component_directions() const {
  auto dirs = unit_directions();
  if (!options_.invariant) return dirs;
  // In the component's own frame: frame particle 1 along e1; in 3D frame particle 2 in the
  // (e1, e2) plane along its 2D direction; the others along their mu.
  const int64_t K = options_.components, n = options_.dim;
  auto f64 = dirs.options();
  auto first = torch::zeros({K, 1, n}, f64);
  first.select(2, 0).fill_(1.0);
  if (n == 2) return torch::cat({first, dirs.narrow(1, 1, options_.num_free - 1)}, 1);
  auto mu2 = normalize_rows(dirs.select(1, 1).narrow(-1, 0, 2));
  auto second = torch::cat({mu2, torch::zeros({K, 1}, f64)}, -1).unsqueeze(1);
  return torch::cat({first, second, dirs.narrow(1, 2, options_.num_free - 2)}, 1);
}

torch::Tensor MintPriorImpl::component_configurations() const {
  if (isotropic()) return torch::zeros({1, options_.num_free, options_.dim}, log_scale.options());
  if (internal()) return from_frame_coordinates(internal_centres());
  if (gaussian()) return from_frame_coordinates(mean);
  return component_directions() * rho.exp().unsqueeze(-1);
}

torch::Tensor MintPriorImpl::repulsion() {
  // The correlated families have no direction Gram matrices: its components start on distinct minima.
  if (correlated() || isotropic() || options_.components < 2) return torch::zeros({}, logits.options());
  auto dirs = component_directions();
  auto gram = torch::matmul(dirs, dirs.transpose(1, 2)).flatten(1);  // (K, M*M)
  auto unit = gram / gram.pow(2).sum(-1, true).sqrt();
  auto cosines = torch::matmul(unit, unit.t());
  return cosines.sum() - cosines.diagonal().sum();
}

}  // namespace mintjulep
