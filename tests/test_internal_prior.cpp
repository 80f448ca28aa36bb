// Internal coordinates of molecules (DESIGN.md §3c): the Z-matrix from the bond graph, the
// round trip c(y(c)), the volume element against a numerical Jacobian, and clear errors.
#include <mintjulep/energy.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/internal_coordinates.hpp>
#include <mintjulep/harmonic_prior.hpp>
#include <mintjulep/minimize.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/ramachandran.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "test_helpers.hpp"

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;
auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

template <class F>
void expect_error_containing(F f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "expected an Error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

struct Ala2 {
  std::shared_ptr<Energy> system = make_system("ala2");
  int64_t anchor = system->default_anchor();
  AnchoredEnergy energy{system, anchor};
  std::array<int64_t, 2> frame_particles() const {
    auto f = system->default_frame(anchor);
    return {f[0], f[1]};
  }
  ZMatrix zmatrix() const {
    return ZMatrix(system->num_particles(), anchor, frame_particles(), system->bonds());
  }
  // The PDB structure plus noise, anchored: (count, M, 3).
  torch::Tensor configurations(int64_t count, double noise, uint64_t seed) const {
    torch::manual_seed(seed);
    auto x = system->reference_configuration();
    x = x + noise * torch::randn({count, x.size(1), 3}, f64);
    return energy.to_anchored(x);
  }
};

torch::Tensor pair_distances_of(const torch::Tensor& y) { return torch::cdist(y, y); }

TEST(ZMatrix, AlanineDipeptideLayout) {
  Ala2 a;
  auto zm = a.zmatrix();
  EXPECT_EQ(zm.num_free(), 21);
  EXPECT_EQ(zm.dim(), 60);
  EXPECT_EQ(zm.num_placed(), 19);
  EXPECT_EQ(zm.length_index().size(), 21u);
  EXPECT_EQ(zm.angle_index().size(), 20u);
  EXPECT_EQ(zm.torsion_index().size(), 19u);
  // phi (about N - CA), psi (CA - C) and the two peptide bonds turn; methyl rotors do not.
  EXPECT_EQ(zm.rotatable_groups().size(), 4u);
  // Every atom is placed after its references.
  std::vector<bool> placed(22, false);
  placed[21] = placed[static_cast<size_t>(zm.f1())] = placed[static_cast<size_t>(zm.f2())] = true;
  for (size_t j = 0; j < zm.atoms().size(); ++j) {
    EXPECT_TRUE(placed[static_cast<size_t>(zm.parents()[j])] && placed[static_cast<size_t>(zm.grandparents()[j])] &&
                placed[static_cast<size_t>(zm.references()[j])]);
    placed[static_cast<size_t>(zm.atoms()[j])] = true;
  }
}

TEST(ZMatrix, RoundTripOnAlanineDipeptide) {
  Ala2 a;
  auto zm = a.zmatrix();
  auto y = a.configurations(32, 0.01, 1);
  auto c = zm.coordinates(y);
  auto back = zm.positions(c);
  // The same shape (all distances, all torsions) in the canonical orientation.
  EXPECT_LT((pair_distances_of(back) - pair_distances_of(y)).abs().max().item<double>(), 1e-12);
  auto c2 = zm.coordinates(back);
  auto diff = c2 - c;
  auto ti = torch::tensor(zm.torsion_index(), torch::kLong);
  diff.index_copy_(1, ti, torch::atan2(diff.index_select(1, ti).sin(), diff.index_select(1, ti).cos()));
  EXPECT_LT(diff.abs().max().item<double>(), 1e-12);
  // Canonical orientation: f1 on +x, f2 in the xy plane with y > 0.
  EXPECT_LT(back.select(1, zm.f1()).narrow(1, 1, 2).abs().max().item<double>(), 1e-15);
  EXPECT_LT(back.select(1, zm.f2()).select(1, 2).abs().max().item<double>(), 1e-15);
  // The backbone dihedrals of the rebuilt structure are those of the original.
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(a.system);
  auto bb = find_backbone(molecule->topology());
  auto x = a.energy.to_full(y), xb = a.energy.to_full(back);
  EXPECT_LT((dihedral(x, bb.c_prev, bb.n, bb.ca, bb.c) - dihedral(xb, bb.c_prev, bb.n, bb.ca, bb.c)).abs().max().item<double>(),
            1e-12);
  // y(c(y)) is y up to the rotation that takes y's frame to the canonical one: energies agree.
  EXPECT_LT((a.energy.value(back) - a.energy.value(y)).abs().max().item<double>(), 1e-8);
}

TEST(ZMatrix, MirrorImageNegatesEveryTorsion) {
  Ala2 a;
  auto zm = a.zmatrix();
  auto y = a.configurations(8, 0.01, 2);
  auto c = zm.coordinates(y), cm = zm.coordinates(-y);
  auto ti = torch::tensor(zm.torsion_index(), torch::kLong);
  auto sum = c.index_select(1, ti) + cm.index_select(1, ti);
  EXPECT_LT(torch::atan2(sum.sin(), sum.cos()).abs().max().item<double>(), 1e-12);
  auto sign = torch::ones({zm.dim()}, f64).index_fill(0, ti, -1.0);
  auto rebuilt = zm.positions(c * sign);
  EXPECT_LT((pair_distances_of(rebuilt) - pair_distances_of(y)).abs().max().item<double>(), 1e-12);
}

TEST(ZMatrix, VolumeElementMatchesTheJacobianDeterminant) {
  // y(c, w) = y_canonical(c) exp([w]x) at w = 0: |det dy/d(c, w)| must be
  // exp(log_volume(c)) / (8 pi^2) (exponential coordinates of the normalised rotation measure).
  Ala2 a;
  auto zm = a.zmatrix();
  auto y = a.configurations(3, 0.02, 3);
  auto c0 = zm.coordinates(y);
  const int64_t D = zm.dim(), M = zm.num_free();
  for (int64_t b = 0; b < c0.size(0); ++b) {
    auto input = torch::cat({c0[b], torch::zeros({3}, f64)}).requires_grad_(true);
    auto c = input.narrow(0, 0, D).unsqueeze(0);
    auto w = input.narrow(0, D, 3);
    auto zero = torch::zeros({}, f64);
    auto skew = torch::stack({torch::stack({zero, -w[2], w[1]}), torch::stack({w[2], zero, -w[0]}),
                              torch::stack({-w[1], w[0], zero})});
    auto out = torch::matmul(zm.positions(c).squeeze(0), torch::matrix_exp(skew).t()).flatten();
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < 3 * M; ++i)
      rows.push_back(torch::autograd::grad({out[i]}, {input}, {}, /*retain_graph=*/true)[0]);
    auto jacobian = torch::stack(rows);
    const double log_det = std::get<1>(torch::linalg_slogdet(jacobian)).item<double>();
    const double expected = zm.log_volume(c0.narrow(0, b, 1)).item<double>() - std::log(8 * kPi * kPi);
    EXPECT_NEAR(log_det, expected, 1e-9);
  }
}

TEST(ZMatrix, ErrorsAreClear) {
  expect_error_containing([] { ZMatrix(4, 0, {1, 2}, {}); }, "no bonds");
  expect_error_containing([] { ZMatrix(5, 0, {1, 2}, {{0, 1}, {0, 2}, {3, 4}}); }, "disconnected");
  expect_error_containing([] { ZMatrix(4, 0, {1, 3}, {{0, 1}, {0, 2}, {2, 3}}); }, "bonded to the anchor");
  auto cluster = make_system("lj13");
  EXPECT_TRUE(cluster->bonds().empty());
  EXPECT_EQ(make_system("ala2")->bonds().size(), 21u);
}

// A 5-atom molecule-like graph: the anchor 1 bonded to 0, 2 and 3, and 4 bonded to 2; atom 3
// is placed against the frame (an improper torsion), atom 4 about the bond 2 - 1.
MintPrior chain_prior(int64_t components, uint64_t seed, double spread = 0.2,
                      std::vector<std::vector<int64_t>> symmetries = {}) {
  MintPriorOptions o;
  o.symmetries = std::move(symmetries);
  o.family = "internal";
  o.num_free = 4;
  o.dim = 3;
  o.components = components;
  o.anchor = 1;
  o.frame = {0, 1};  // rows of particles 0 and 2
  o.bonds = {{1, 0}, {1, 2}, {1, 3}, {2, 4}};
  o.radius = 1.0;
  o.sigma = 0.25;
  torch::manual_seed(seed);
  MintPrior prior(o);
  torch::NoGradGuard no_grad;
  prior->logits.copy_(torch::randn({components}, f64));
  prior->mean.add_(spread * torch::randn_like(prior->mean));
  prior->log_precision_diag.add_(spread * torch::randn_like(prior->log_precision_diag));
  prior->precision_upper.add_(spread * torch::randn_like(prior->precision_upper));
  return prior;
}

torch::Tensor chunked_log_prob(MintPrior& prior, const torch::Tensor& y, int64_t chunk = 20000) {
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < y.size(0); start += chunk)
    parts.push_back(prior->log_prob(y.narrow(0, start, std::min(chunk, y.size(0) - start))));
  return torch::cat(parts);
}

MintPrior ala2_prior(const Ala2& a, int64_t components, uint64_t seed) {
  MintPriorOptions o;
  o.family = "internal";
  o.num_free = a.energy.num_free();
  o.dim = 3;
  o.components = components;
  o.anchor = a.anchor;
  auto f = a.frame_particles();
  o.frame = {f[0] < a.anchor ? f[0] : f[0] - 1, f[1] < a.anchor ? f[1] : f[1] - 1};
  o.bonds = a.system->bonds();
  o.radius = a.system->length_scale();
  o.sigma = 0.05;
  torch::manual_seed(seed);
  return MintPrior(o);
}

TEST(InternalPrior, DensityIntegratesToOne) {
  // E_p[q/p] over a wide Gaussian p = N(0, s^2 I) on R^(M 3): 1 within 3 standard errors.
  // Independent of the volume element and of the coordinate maps.
  auto prior = chain_prior(3, 11);
  {
    // Broad components (sd ~0.4 in every u), so that the Gaussian proposal covers them.
    torch::NoGradGuard no_grad;
    prior->log_precision_diag.fill_(std::log(2.5));
    prior->precision_upper.mul_(0.5);
  }
  auto ratio = testing::ratios_to_wide_gaussian([&](const torch::Tensor& y) { return chunked_log_prob(prior, y); },
                                                400000, 4, 3, 1.2, 12);
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.05));
}

TEST(InternalPrior, SamplerMatchesDensity) {
  auto q = chain_prior(4, 13), q2 = chain_prior(4, 13);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : q2->parameters()) p.add_(0.1 * torch::randn_like(p));
  }
  torch::manual_seed(14);
  const int64_t count = 200000;
  torch::NoGradGuard no_grad;
  auto y = q->sample(count);
  auto ratio = torch::exp(chunked_log_prob(q2, y) - chunked_log_prob(q, y));
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.02));
}

// Each component's covariance in u, (K, D, D).
torch::Tensor component_covariances(const MintPrior& prior) {
  auto inverse = torch::inverse(prior->precision_factor());
  return torch::matmul(inverse, inverse.transpose(1, 2));
}

TEST(InternalPriorEm, TheTrueParametersAreAFixedPoint) {
  // Unweighted draws of the mixture itself: one EM step (no shrinkage) must return the
  // parameters it started from up to sampling error, with and without averaging over a
  // relabelling (atoms 0 and 3 swapped). Wrong responsibilities (a missing Jacobian, reflection
  // or relabelling term) would move them.
  for (bool symmetric : {false, true}) {
    auto prior = chain_prior(3, 51, 0.2, symmetric ? std::vector<std::vector<int64_t>>{{0, 1, 2, 3, 4}, {3, 1, 2, 0, 4}}
                                                   : std::vector<std::vector<int64_t>>{});
    torch::NoGradGuard no_grad;
    prior->logits.copy_(torch::tensor({0.0, 0.3, -0.2}, f64));
    auto mean = prior->mean.clone(), weights = prior->weights(), cov = component_covariances(prior);
    torch::manual_seed(52);
    auto y = prior->sample(100000);
    auto effective = prior->em_step(y, torch::zeros({y.size(0)}, f64), 0.0);
    EXPECT_GT(effective.min().item<double>(), 15000);
    EXPECT_LT((prior->weights() - weights).abs().max().item<double>(), 0.01) << symmetric;
    const auto sd = cov.diagonal(0, 1, 2).sqrt();
    EXPECT_LT(((prior->mean - mean) / sd).abs().max().item<double>(), 0.05) << symmetric;
    auto relative = (component_covariances(prior) - cov).norm(2, {1, 2}) / cov.norm(2, {1, 2});
    EXPECT_LT(relative.max().item<double>(), 0.05) << symmetric;
  }
}

TEST(InternalPriorEm, ImportanceWeightsMoveTheComponentOntoATargetInTheFamily) {
  // One broad component q, target q' of the same family (same torsion centre): weighted by
  // q'/q, EM steps on the same draws land on q' (the forward-KL optimum), up to
  // importance-sampling error. (One step is not enough: its responsibilities between the two
  // reflections are those of the broad q.)
  // The covariance update rescales variances along the current principal axes, so the target
  // shares q's axes: q is the target 1.5x wider in every direction, with another mean.
  auto q = chain_prior(1, 53), target = chain_prior(1, 53);
  torch::NoGradGuard no_grad;
  target->mean.add_(0.15 * torch::randn_like(target->mean));
  target->precision_upper.add_(0.2 * torch::randn_like(target->precision_upper));
  q->log_precision_diag.copy_(target->log_precision_diag - 0.4);
  q->precision_upper.copy_(target->precision_upper * std::exp(-0.4));
  torch::manual_seed(54);
  auto y = q->sample(50000);
  auto log_w = chunked_log_prob(target, y) - chunked_log_prob(q, y);
  auto before = (q->mean - target->mean).abs().max().item<double>();
  for (int step = 0; step < 8; ++step) q->em_step(y, log_w, 0.0);
  const auto cov = component_covariances(target), sd = cov.diagonal(0, 1, 2).sqrt();
  EXPECT_GT(before, 0.2);
  EXPECT_LT(((q->mean - target->mean) / sd).abs().max().item<double>(), 0.05);
  EXPECT_LT(((component_covariances(q) - cov).norm(2, {1, 2}) / cov.norm(2, {1, 2})).item<double>(), 0.05);
  // E_q'[q/q'] = 1 holds for the fitted q too (still a normalised density): log densities agree.
  auto z = target->sample(20000);
  EXPECT_LT((chunked_log_prob(q, z) - chunked_log_prob(target, z)).abs().mean().item<double>(), 0.05);
}

TEST(InternalPriorEm, SplittingReseedsAnUnusedComponentWhereTheTargetIsBimodal) {
  // Target: two equal components 1.5 sd to either side of a centre, along their widest
  // principal axis. q: one component at the centre with twice the covariance, and a second one
  // with no weight. With splits the unused component becomes the second half of the first and
  // EM fits both halves onto the target; without, q stays one Gaussian, and its density misses
  // the target's by more.
  auto target = chain_prior(2, 56), q = chain_prior(2, 56);
  torch::NoGradGuard no_grad;
  for (auto* p : {&target, &q})
    for (auto* t : {&(*p)->mean, &(*p)->torsion_centre, &(*p)->log_precision_diag, &(*p)->precision_upper})
      (*t)[1].copy_((*t)[0]);
  auto eigen = at::linalg_eigh(component_covariances(target)[0]);
  auto variances = std::get<0>(eigen), axes = std::get<1>(eigen);
  const int64_t widest = variances.argmax().item<int64_t>();
  auto shift = 1.5 * variances[widest].sqrt() * axes.select(1, widest);
  target->mean[0].add_(shift);
  target->mean[1].sub_(shift);
  target->logits.zero_();
  q->log_precision_diag.sub_(0.5 * std::log(2.0));
  q->precision_upper.mul_(std::sqrt(0.5));
  q->logits.copy_(torch::tensor({0.0, -30.0}, f64));
  auto fitted = [&](double split_below) {
    auto fit = chain_prior(2, 56);
    for (size_t i = 0; i < fit->parameters().size(); ++i) fit->parameters()[i].copy_(q->parameters()[i]);
    torch::manual_seed(57);
    auto y = fit->sample(40000);
    auto log_w = chunked_log_prob(target, y) - chunked_log_prob(fit, y);
    for (int step = 0; step < 8; ++step) fit->em_step(y, log_w, 0.0, {}, split_below);
    return fit;
  };
  auto split = fitted(1e-3), single = fitted(0.0);
  torch::manual_seed(58);
  auto z = target->sample(20000);
  auto log_target = chunked_log_prob(target, z);
  const double error_split = (chunked_log_prob(split, z) - log_target).abs().mean().item<double>();
  const double error_single = (chunked_log_prob(single, z) - log_target).abs().mean().item<double>();
  EXPECT_LT(error_split, 0.08);  // measured 0.044; one Gaussian: 0.28
  EXPECT_GT(error_single, 3 * error_split);
  // The halves sit on the target's components, each with half the weight.
  EXPECT_LT((split->weights() - 0.5).abs().max().item<double>(), 0.05);
  auto along = [&](const MintPrior& p) { return std::get<0>(torch::matmul(p->mean, axes.select(1, widest)).sort()); };
  EXPECT_LT(((along(split) - along(target)) / variances[widest].sqrt()).abs().max().item<double>(), 0.1)
      << along(split) << along(target);
  EXPECT_LT(single->weights()[1].item<double>(), 1e-6);
}

TEST(InternalPriorEm, StrengthKeepsComponentsThatFewSamplesSaw) {
  auto prior = chain_prior(2, 55);
  torch::NoGradGuard no_grad;
  auto mean = prior->mean.clone(), factor = prior->precision_factor().clone(), weights = prior->weights();
  auto y = prior->sample(500);
  prior->em_step(y, torch::randn({500}, f64), 1e12);
  EXPECT_LT((prior->mean - mean).abs().max().item<double>(), 1e-6);
  EXPECT_LT((prior->precision_factor() - factor).abs().max().item<double>(), 1e-6);
  EXPECT_LT((prior->weights() - weights).abs().max().item<double>(), 1e-6);
  expect_error_containing([&] { prior->em_step(y, torch::zeros({3}, f64), 1.0); }, "one log weight per configuration");
  // A split of the lighter component (under 0.99 x the heavier): an exact mixture again, its
  // halves equal in weight and covariance, their means apart.
  prior->logits.copy_(torch::tensor({0.0, -2.0}, f64));
  prior->em_step(y, torch::zeros({500}, f64), 1e12, {}, 0.99);
  EXPECT_NEAR(prior->weights()[0].item<double>(), 0.5, 1e-12);
  EXPECT_LT((prior->precision_factor()[0] - prior->precision_factor()[1]).abs().max().item<double>(), 1e-12);
  EXPECT_GT((prior->mean[0] - prior->mean[1]).abs().max().item<double>(), 0.01);
  auto log_q = prior->log_prob(y);
  EXPECT_TRUE(torch::isfinite(log_q).all().item<bool>());
  expect_error_containing([&] { prior->em_step(y, torch::zeros({500}, f64), 1.0, {}, 1.0); }, "split_below in [0, 1)");
}

TEST(InternalPrior, InvariantUnderRotationsAndReflectionsOnAlanineDipeptide) {
  Ala2 a;
  auto prior = ala2_prior(a, 4, 15);
  torch::NoGradGuard no_grad;
  prior->initialize_from(a.configurations(4, 0.01, 16));
  auto y = prior->sample(64);
  auto reference = prior->log_prob(y);
  EXPECT_TRUE(torch::isfinite(reference).all().item<bool>());
  for (bool reflect : {false, true}) {
    auto q = testing::random_orthogonal(3, reflect, 17 + reflect);
    const double diff = (prior->log_prob(y.matmul(q)) - reference).abs().max().item<double>();
    EXPECT_LT(diff, 1e-12) << "reflect = " << reflect;
  }
}

TEST(InternalPrior, GradientsMatchFiniteDifferences) {
  auto prior = chain_prior(3, 18);
  torch::manual_seed(19);
  auto y = prior->sample(4).requires_grad_(true);
  auto grad = torch::autograd::grad({prior->log_prob(y).sum()}, {y})[0];
  auto eye = torch::eye(12, f64).reshape({12, 1, 4, 3});
  auto yd = y.detach().unsqueeze(0);
  const double h = 1e-6;
  {
    torch::NoGradGuard no_grad;
    auto plus = prior->log_prob((yd + h * eye).reshape({-1, 4, 3})).view({12, -1});
    auto minus = prior->log_prob((yd - h * eye).reshape({-1, 4, 3})).view({12, -1});
    auto fd = ((plus - minus) / (2 * h)).t().reshape_as(grad);
    EXPECT_LT((fd - grad).norm().item<double>() / grad.norm().item<double>(), 1e-6);
  }
  // Parameters: every entry of each parameter tensor against central differences.
  auto yc = y.detach();
  auto params = prior->named_parameters();
  auto grads = torch::autograd::grad({prior->log_prob(yc).sum()}, params.values());
  for (size_t p = 0; p < params.size(); ++p) {
    auto& value = params[p].value();
    auto flat = value.detach().view({-1});
    auto g = grads[p].reshape({-1});
    torch::NoGradGuard no_grad;
    for (int64_t i = 0; i < flat.numel(); i += std::max<int64_t>(1, flat.numel() / 7)) {
      const double old = flat[i].item<double>();
      flat[i] = old + h;
      const double plus = prior->log_prob(yc).sum().item<double>();
      flat[i] = old - h;
      const double minus = prior->log_prob(yc).sum().item<double>();
      flat[i] = old;
      EXPECT_NEAR(g[i].item<double>(), (plus - minus) / (2 * h), 1e-5 * (1 + std::abs(g[i].item<double>())))
          << params[p].key() << "[" << i << "]";
    }
  }
}

TEST(InternalPrior, FrameCoordinatesRoundTripAndJacobian) {
  // z = (log r, logit(theta / pi), phi); log q = log p_z(z) + log_frame_jacobian(z) for the
  // density p_z of z: checked on a one-component prior whose p_z is a known Gaussian in u.
  Ala2 a;
  auto prior = ala2_prior(a, 2, 20);
  auto y = a.configurations(6, 0.01, 21);
  auto z = prior->frame_coordinates(y);
  auto back = prior->from_frame_coordinates(z);
  EXPECT_LT((pair_distances_of(back) - pair_distances_of(y)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((prior->frame_coordinates(back) - z).abs().max().item<double>(), 1e-10);
}

// Backbone basin of alanine dipeptide from (phi, psi) in degrees: C7eq, C5, alpha_R, alpha_L, C7ax.
std::string basin(double phi, double psi) {
  if (phi < 0) {
    if (psi >= -120 && psi < 50) return "alpha_R";
    return phi > -120 ? "C7eq" : "C5";
  }
  return psi >= 0 ? "alpha_L" : "C7ax";
}

TEST(BasinDiscovery, RandomRotamersOfAlanineDipeptideReachItsBackboneBasins) {
  Ala2 a;
  auto zm = a.zmatrix();
  torch::manual_seed(22);
  auto rotamers = random_rotamers(zm, a.energy.to_anchored(a.system->reference_configuration()).select(0, 0), 8);
  // Bonds and angles are kept, torsions turned.
  auto c0 = zm.coordinates(a.energy.to_anchored(a.system->reference_configuration()));
  auto c = zm.coordinates(rotamers);
  auto li = torch::tensor(zm.length_index(), torch::kLong), ai = torch::tensor(zm.angle_index(), torch::kLong);
  EXPECT_LT((c.index_select(1, li) - c0.index_select(1, li)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((c.index_select(1, ai) - c0.index_select(1, ai)).abs().max().item<double>(), 1e-12);

  auto minima = discover_molecule_minima(a.energy, zm, 40, 200, 1000);
  auto energies = a.energy.value(minima);
  ASSERT_TRUE(torch::isfinite(energies).all().item<bool>());
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(a.system);
  auto bb = find_backbone(molecule->topology());
  auto x = a.energy.to_full(minima);
  auto phi = dihedral(x, bb.c_prev, bb.n, bb.ca, bb.c) * (180 / kPi);
  auto psi = dihedral(x, bb.n, bb.ca, bb.c, bb.n_next) * (180 / kPi);
  std::set<std::string> found;
  const double lowest = energies.min().item<double>();
  for (int64_t i = 0; i < minima.size(0); ++i)
    if (energies[i].item<double>() < lowest + 20) found.insert(basin(phi[i].item<double>(), psi[i].item<double>()));
  std::string names;
  for (const auto& f : found) names += f + " ";
  EXPECT_GE(found.size(), 4u) << names;

  // Harmonic components on these minima: an exact prior whose samples have finite energies.
  auto prior = ala2_prior(a, 6, 23);
  auto result = initialize_harmonic_prior_from(prior, a.energy, minima);
  EXPECT_GE(result.distinct, 4);
  torch::NoGradGuard no_grad;
  auto y = prior->sample(256);
  auto log_w = -a.energy.value(y) - prior->log_prob(y);
  EXPECT_TRUE(torch::isfinite(log_w).all().item<bool>());
  auto w = torch::softmax(log_w, 0);
  EXPECT_GT(1.0 / w.pow(2).sum().item<double>() / 256, 0.01);  // prior ESS above 1 % (6 components, no training)
}

TEST(HarmonicInit, MethylRelabellingsOfOneMinimumAreMerged) {
  // The same minimum with the three hydrogens of each methyl group relabelled (a rotation of
  // the rotor by 120 degrees) is one basin: merged by default, kept apart without merging.
  Ala2 a;
  auto y = minimize_energy(a.energy, a.configurations(1, 0.0, 30), 300).y;
  auto x = a.energy.to_full(y);
  // ACE HH31, HH32, HH33 = 0, 2, 3; ALA HB1..3 = 11..13; NME HH31..33 = 19..21.
  std::vector<int64_t> order(22);
  std::iota(order.begin(), order.end(), 0);
  for (auto g : {std::array<int64_t, 3>{0, 2, 3}, {11, 12, 13}, {19, 20, 21}}) {
    order[g[0]] = g[1];
    order[g[1]] = g[2];
    order[g[2]] = g[0];
  }
  auto relabelled = a.energy.to_anchored(x.index_select(1, torch::tensor(order, torch::kLong)));
  EXPECT_LT(std::abs(a.energy.value(relabelled).item<double>() - a.energy.value(y).item<double>()), 1e-9);
  auto minima = torch::cat({y, relabelled});
  auto merged_prior = ala2_prior(a, 2, 31);
  auto merged = initialize_harmonic_prior_from(merged_prior, a.energy, minima);
  EXPECT_EQ(merged.distinct, 1);
  EXPECT_EQ(merged.relabellings, 216);  // 3! per methyl group
  HarmonicOptions keep;
  keep.merge_relabelled = false;
  auto apart_prior = ala2_prior(a, 2, 31);
  EXPECT_EQ(initialize_harmonic_prior_from(apart_prior, a.energy, minima, keep).distinct, 2);
}

// ACE HH31, HH32, HH33 = 0, 2, 3; ALA HB1..3 = 11..13; NME HH31..33 = 19..21.
const std::vector<std::vector<int64_t>> kAla2Methyls = {{0, 2, 3}, {11, 12, 13}, {19, 20, 21}};

TEST(RotorSymmetry, FindsTheThreeMethylRotorsOfAlanineDipeptide) {
  Ala2 a;
  auto rotors = terminal_rotors(*a.system, a.anchor);
  for (auto& r : rotors) std::sort(r.begin(), r.end());
  std::sort(rotors.begin(), rotors.end());
  EXPECT_EQ(rotors, kAla2Methyls);
  EXPECT_TRUE(terminal_rotors(*make_system("lj13"), 0).empty());
}

MintPrior ala2_rotor_prior(const Ala2& a, bool symmetric) {
  MintPriorOptions o = ala2_prior(a, 3, 41)->options();
  o.rotors = kAla2Methyls;
  if (symmetric) o.symmetries = rotor_relabellings(kAla2Methyls, 22);
  torch::manual_seed(41);
  MintPrior prior(o);
  torch::NoGradGuard no_grad;
  prior->logits.copy_(torch::randn({3}, f64));
  prior->mean.add_(0.3 * torch::randn_like(prior->mean));
  return prior;
}

// The 27 relabellings written out: each methyl's hydrogens shifted cyclically, as row maps.
std::vector<torch::Tensor> ala2_rotor_relabellings(const Ala2& a) {
  std::vector<torch::Tensor> result;
  const int64_t M = a.energy.num_free();
  for (int s0 = 0; s0 < 3; ++s0)
    for (int s1 = 0; s1 < 3; ++s1)
      for (int s2 = 0; s2 < 3; ++s2) {
        std::vector<int64_t> rows(static_cast<size_t>(M));
        std::iota(rows.begin(), rows.end(), 0);
        const int shifts[3] = {s0, s1, s2};
        for (size_t r = 0; r < 3; ++r)
          for (size_t i = 0; i < 3; ++i) {
            auto row = [&](int64_t p) { return p < a.anchor ? p : p - 1; };
            rows[static_cast<size_t>(row(kAla2Methyls[r][i]))] = row(kAla2Methyls[r][(i + shifts[r]) % 3]);
          }
        result.push_back(torch::tensor(rows, torch::kLong));
      }
  return result;
}

TEST(RotorSymmetry, LogDensityIsTheMixtureAveragedOverCyclicRelabellings) {
  Ala2 a;
  auto symmetric = ala2_rotor_prior(a, true), plain = ala2_rotor_prior(a, false);
  EXPECT_EQ(symmetric->symmetry_count(), 27);
  EXPECT_EQ(plain->symmetry_count(), 1);
  torch::NoGradGuard no_grad;
  auto y = plain->sample(64);
  std::vector<torch::Tensor> terms;
  for (const auto& rows : ala2_rotor_relabellings(a)) terms.push_back(plain->log_prob(y.index_select(1, rows)));
  auto expected = torch::logsumexp(torch::stack(terms), 0) - std::log(27.0);
  auto got = symmetric->log_prob(y);
  EXPECT_LT((got - expected).abs().max().item<double>(), 1e-10);
  EXPECT_GT((got - plain->log_prob(y)).abs().max().item<double>(), 1.0);  // the average differs
  for (const auto& rows : ala2_rotor_relabellings(a))
    EXPECT_LT((symmetric->log_prob(y.index_select(1, rows)) - got).abs().max().item<double>(), 1e-10);
}

TEST(RotorSymmetry, SamplerMatchesTheSymmetrisedDensity) {
  // E_q[q'/q] = 1 for the plain mixture q' and samples of the symmetrised q. Drawn without the
  // random relabelling, the samples would sit where q' = 27 q and the mean would be near 27.
  Ala2 a;
  auto symmetric = ala2_rotor_prior(a, true), plain = ala2_rotor_prior(a, false);
  torch::manual_seed(42);
  torch::NoGradGuard no_grad;
  auto y = symmetric->sample(5000);
  auto ratio = torch::exp(chunked_log_prob(plain, y, 2000) - chunked_log_prob(symmetric, y, 2000));
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.1));
}

TEST(RotorSymmetry, RotorWideningAddsVarianceAlongTheRigidTurnOnly) {
  // Sigma' = Sigma + sd^2 w w^T in the torsions (w = 1 on a rotor's three torsions); in u =
  // tan(dphi / 2) the covariance is a quarter of that on the torsions.
  Ala2 a;
  auto y = minimize_energy(a.energy, a.configurations(1, 0.0, 30), 300).y;
  auto covariance = [&](double sd) {
    MintPriorOptions o = ala2_prior(a, 1, 43)->options();
    o.rotors = kAla2Methyls;
    MintPrior prior(o);
    HarmonicOptions h;
    h.rotor_sd = sd;
    initialize_harmonic_prior_from(prior, a.energy, y, h);
    auto u = prior->precision_factor().squeeze(0);
    return torch::inverse(torch::matmul(u.t(), u));
  };
  const double sd = 0.5;
  auto change = covariance(sd) - covariance(0.0);
  auto reference = ala2_prior(a, 1, 43);
  const auto& zm = reference->zmatrix();
  auto expected = torch::zeros_like(change);
  for (const auto& rotor : kAla2Methyls) {
    auto w = torch::zeros({change.size(0)}, f64);
    for (int64_t p : rotor) {
      const int64_t row = p < a.anchor ? p : p - 1;
      for (size_t j = 0; j < zm.atoms().size(); ++j)
        if (zm.atoms()[j] == row) w[zm.torsion_index()[j]] = 0.5;
    }
    expected += sd * sd * torch::outer(w, w);
  }
  EXPECT_LT((change - expected).abs().max().item<double>(), 1e-8) << (change - expected).abs().max();
}

}  // namespace
}  // namespace mintjulep
