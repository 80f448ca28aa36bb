// The gaussian (correlated) Mint prior family of DESIGN.md §3b: exact normalisation, O(n)
// invariance, sampler-density agreement, gradients, the frame-axis limit, and the harmonic
// initialisation at minima (Hessians, merging, weights).
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/harmonic_prior.hpp>
#include <mintjulep/minimize.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/mint_training.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <algorithm>
#include <numeric>

#include "test_helpers.hpp"

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;
auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

// A gaussian prior with unequal weights and correlated, unequal covariances.
MintPrior make_gaussian_prior(int64_t num_free, int64_t dim, int64_t components, uint64_t seed,
                              double sigma = 0.3) {
  torch::manual_seed(seed);
  MintPriorOptions o;
  o.family = "gaussian";
  o.num_free = num_free;
  o.dim = dim;
  o.components = components;
  o.sigma = sigma;
  o.radius = 1.0;
  o.radius_spread = 0.1;
  MintPrior prior(o);
  torch::NoGradGuard no_grad;
  prior->logits.copy_(torch::randn({components}, f64));
  prior->log_precision_diag.add_(0.2 * torch::randn_like(prior->log_precision_diag));
  prior->precision_upper.copy_(0.5 * torch::randn_like(prior->precision_upper));
  return prior;
}

struct Case {
  int64_t num_free, dim;
};
void PrintTo(const Case& c, std::ostream* os) { *os << "M" << c.num_free << "_n" << c.dim; }

class GaussianPriorCases : public ::testing::TestWithParam<Case> {};

TEST_P(GaussianPriorCases, FrameCoordinatesRoundTrip) {
  const auto c = GetParam();
  auto prior = make_gaussian_prior(c.num_free, c.dim, 2, 1);
  torch::NoGradGuard no_grad;
  auto y = prior->sample(16);
  auto z = prior->frame_coordinates(y);
  EXPECT_EQ(z.size(1), prior->frame_dim());
  EXPECT_EQ(prior->frame_dim(), c.dim == 2 ? 2 * (c.num_free + 1) - 3 : 3 * (c.num_free + 1) - 6);
  auto back = prior->from_frame_coordinates(z);
  EXPECT_LT((prior->frame_coordinates(back) - z).abs().max().item<double>(), 1e-12);
  // Same distances between all particles (and the anchor at the origin).
  auto with_anchor = [](const torch::Tensor& v) {
    return torch::cat({torch::zeros({v.size(0), 1, v.size(2)}, v.options()), v}, 1);
  };
  EXPECT_LT((torch::cdist(with_anchor(y), with_anchor(y)) - torch::cdist(with_anchor(back), with_anchor(back)))
                .abs().max().item<double>(), 1e-12);
}

TEST_P(GaussianPriorCases, DensityIntegratesToOne) {
  // E_p[q/p] over a wide Gaussian p = N(0, s^2 I); 1 within 3 standard errors.
  const auto c = GetParam();
  auto prior = make_gaussian_prior(c.num_free, c.dim, 3, 2);
  auto ratio = testing::ratios_to_wide_gaussian([&](const torch::Tensor& y) { return prior->log_prob(y); },
                                                400000, c.num_free, c.dim, 0.8, 3);
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.05));
}

TEST_P(GaussianPriorCases, SamplerMatchesDensity) {
  const auto c = GetParam();
  auto q = make_gaussian_prior(c.num_free, c.dim, 4, 4);
  auto q2 = make_gaussian_prior(c.num_free, c.dim, 4, 4);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : q2->parameters()) p.add_(0.1 * torch::randn_like(p));
  }
  torch::manual_seed(5);
  const int64_t count = 200000;
  torch::NoGradGuard no_grad;
  auto y = q->sample(count);
  auto ratio = torch::exp(q2->log_prob(y) - q->log_prob(y));
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.02));
}

TEST_P(GaussianPriorCases, GradientsInYAndParametersMatchFiniteDifferences) {
  const auto c = GetParam();
  auto prior = make_gaussian_prior(c.num_free, c.dim, 3, 6);
  auto y = prior->sample(4).requires_grad_(true);
  auto grad = torch::autograd::grad({prior->log_prob(y).sum()}, {y})[0];
  const int64_t d = c.num_free * c.dim;
  auto eye = torch::eye(d, f64).reshape({d, 1, c.num_free, c.dim});
  auto yd = y.detach().unsqueeze(0);
  const double h = 1e-6;
  {
    torch::NoGradGuard no_grad;
    auto plus = prior->log_prob((yd + h * eye).reshape({-1, c.num_free, c.dim})).view({d, -1});
    auto minus = prior->log_prob((yd - h * eye).reshape({-1, c.num_free, c.dim})).view({d, -1});
    auto fd = ((plus - minus) / (2 * h)).t().reshape_as(grad);
    EXPECT_LT((fd - grad).norm().item<double>() / grad.norm().item<double>(), 1e-6);
  }
  // Parameters: a few entries of each tensor.
  auto yc = y.detach();
  for (auto* p : {&prior->logits, &prior->mean, &prior->precision_upper, &prior->log_precision_diag}) {
    auto g = torch::autograd::grad({prior->log_prob(yc).sum()}, {*p}, {}, false, false, true)[0];
    torch::NoGradGuard no_grad;
    auto flat = p->view({-1});
    for (int64_t i = 0; i < flat.numel(); i += std::max<int64_t>(1, flat.numel() / 7)) {
      // The strictly lower triangle of precision_upper is unused: its gradient is zero.
      const double old = flat[i].item<double>();
      flat[i] = old + h;
      const double plus = prior->log_prob(yc).sum().item<double>();
      flat[i] = old - h;
      const double minus = prior->log_prob(yc).sum().item<double>();
      flat[i] = old;
      EXPECT_NEAR(g.view({-1})[i].item<double>(), (plus - minus) / (2 * h), 1e-6 * (1 + std::abs(plus)));
    }
  }
}

TEST_P(GaussianPriorCases, InvariantUnderRotationsAndReflections) {
  const auto c = GetParam();
  auto prior = make_gaussian_prior(c.num_free, c.dim, 4, 7);
  torch::NoGradGuard no_grad;
  auto y = prior->sample(64);
  auto reference = prior->log_prob(y);
  for (bool reflect : {false, true}) {
    auto q = testing::random_orthogonal(c.dim, reflect, 8 + reflect);
    EXPECT_LT((prior->log_prob(y.matmul(q)) - reference).abs().max().item<double>(), 1e-12)
        << "reflect = " << reflect;
  }
}

INSTANTIATE_TEST_SUITE_P(GaussianPrior, GaussianPriorCases,
                         ::testing::Values(Case{3, 2}, Case{4, 2}, Case{2, 3}, Case{4, 3}));

// Kolmogorov-Smirnov statistic against a CDF evaluated at the sorted samples.
double ks_statistic(const torch::Tensor& sorted_cdf) {
  const int64_t n = sorted_cdf.numel();
  auto i = torch::arange(1, n + 1, f64);
  auto upper = (i / n - sorted_cdf).max(), lower = (sorted_cdf - (i - 1) / n).max();
  return std::max(upper.item<double>(), lower.item<double>());
}

TEST(GaussianPrior, LogProbEqualsTheFormulaWrittenOut) {
  // Many components (K > D: the quadratic-form expansion) and few (K < D: the direct form)
  // against the DESIGN.md §3b formula written out component by component.
  for (auto [M, n, K] : {std::tuple<int64_t, int64_t, int64_t>{3, 2, 12}, {4, 3, 2}, {3, 3, 9}}) {
    auto prior = make_gaussian_prior(M, n, K, 30);
    torch::NoGradGuard no_grad;
    auto y = prior->sample(40);
    auto z = prior->frame_coordinates(y);
    auto u = prior->precision_factor();
    const double D = static_cast<double>(z.size(1));
    std::vector<torch::Tensor> terms;
    for (auto zs : {z, prior->reflect_frame_coordinates(z)}) {
      for (int64_t k = 0; k < K; ++k) {
        auto w = torch::matmul(zs - prior->mean[k], u[k].t());  // rows U_k (z - m_k)
        terms.push_back(torch::log_softmax(prior->logits, 0)[k] - 0.5 * D * std::log(2 * kPi) +
                        prior->log_precision_diag[k].sum() - 0.5 * w.pow(2).sum(1));
      }
    }
    auto expected = prior->log_frame_jacobian(z) - std::log(2.0) + torch::logsumexp(torch::stack(terms), 0);
    EXPECT_LT((prior->log_prob(y) - expected).abs().max().item<double>(), 1e-9) << "K = " << K;
  }
}

TEST(GaussianPrior, FrameRadiusPassesKolmogorovSmirnov) {
  // log r_1 = z_0 is a mixture of normals N(m_k0, Sigma_k00), Sigma_k = (U_k^T U_k)^-1.
  const int64_t count = 20000;
  const double critical = 1.95 / std::sqrt(static_cast<double>(count));  // alpha = 0.001
  for (int64_t n : {2, 3}) {
    auto prior = make_gaussian_prior(4, n, 3, 9);
    torch::NoGradGuard no_grad;
    auto y = prior->sample(count);
    auto log_r = std::get<0>(y.select(1, 0).norm(2, -1).log().sort());
    auto u = prior->precision_factor();
    auto covariance = torch::inverse(torch::matmul(u.transpose(1, 2), u));
    auto sd = covariance.select(1, 0).select(1, 0).sqrt();
    auto cdf_of = [&](const torch::Tensor& x) {
      auto zz = (x.unsqueeze(1) - prior->mean.select(1, 0)) / sd;
      return (prior->weights() * 0.5 * torch::erfc(-zz / std::sqrt(2.0))).sum(1);
    };
    EXPECT_LT(ks_statistic(cdf_of(log_r)), critical) << "n = " << n;
    // The wrong law (a shifted mean) fails.
    EXPECT_GT(ks_statistic(cdf_of(log_r - 0.05)), critical) << "n = " << n;
  }
}

TEST(GaussianPrior, ScoreStaysFiniteNearTheFrameAxis) {
  // Frame particle 2 approaching the line through the anchor and frame particle 1 (b_2 -> 0):
  // log q -> -inf smoothly, with a finite score that pushes it off the axis.
  auto prior = make_gaussian_prior(3, 3, 2, 10);
  torch::NoGradGuard no_grad;
  auto y = prior->sample(1);
  EXPECT_TRUE(prior->path_log_prob_is_exact());  // nothing to soften: the annealing path uses log q
  for (double b : {1e-2, 1e-4, 1e-6}) {
    auto yb = y.clone();
    auto e1 = y[0][0] / y[0][0].norm();
    auto a = (y[0][1] * e1).sum();
    auto side = torch::cross(e1, torch::tensor({0.3, -0.5, 0.8}, f64), 0);
    side = side / side.norm();
    yb[0][1] = a * e1 + b * side;
    torch::AutoGradMode grad_mode(true);
    auto v = yb.clone().requires_grad_(true);
    auto lp = prior->log_prob(v);
    auto g = torch::autograd::grad({lp.sum()}, {v})[0];
    EXPECT_TRUE(torch::isfinite(lp).all().item<bool>()) << b;
    EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << b;
    EXPECT_GT((g[0][1] * side).sum().item<double>(), 0.0) << "score pushes off the axis at b = " << b;
    EXPECT_LT(lp.item<double>(), prior->log_prob(y).item<double>());
  }
}

TEST(GaussianPrior, RejectsBadOptions) {
  MintPriorOptions o;
  o.num_free = 3;
  o.family = "correlated";
  EXPECT_THROW(MintPrior{o}, Error);
  o.family = "gaussian";
  o.invariant = false;
  EXPECT_THROW(MintPrior{o}, Error);
  o.invariant = true;
  MintPrior prior(o);
  EXPECT_THROW(prior->set_gaussian_components(torch::zeros({16, 2}, f64), torch::zeros({16, 2, 2}, f64),
                                              torch::zeros({16}, f64)),
               Error);
  EXPECT_THROW(prior->unit_directions(), Error);
}


// Every permutation of N particles.
std::vector<std::vector<int64_t>> all_permutations(int64_t N) {
  std::vector<int64_t> p(static_cast<size_t>(N));
  std::iota(p.begin(), p.end(), 0);
  std::vector<std::vector<int64_t>> result;
  do result.push_back(p);
  while (std::next_permutation(p.begin(), p.end()));
  return result;
}

// make_gaussian_prior's prior (anchor = particle 0), averaged over all relabellings or not.
MintPrior permutation_prior(int64_t num_free, int64_t dim, bool symmetric, uint64_t seed = 61) {
  MintPriorOptions o = make_gaussian_prior(num_free, dim, 3, seed)->options();
  o.anchor = 0;
  if (symmetric) o.symmetries = all_permutations(num_free + 1);
  auto reference = make_gaussian_prior(num_free, dim, 3, seed);
  MintPrior prior(o);
  torch::NoGradGuard no_grad;
  for (const auto& item : reference->named_parameters()) prior->named_parameters()[item.key()].copy_(item.value());
  return prior;
}

// Relabels anchored configurations (B, M, n) by a permutation of all N particles, written out
// with the anchor (particle 0) at the origin and re-anchored on the new particle 0.
torch::Tensor relabel_anchored(const torch::Tensor& y, const std::vector<int64_t>& g) {
  auto x = torch::cat({torch::zeros({y.size(0), 1, y.size(2)}, y.options()), y}, 1);
  auto xg = x.index_select(1, torch::tensor(g, torch::kLong));
  return (xg - xg.narrow(1, 0, 1)).narrow(1, 1, y.size(1));
}

class PermutationSymmetryCases : public ::testing::TestWithParam<Case> {};

TEST_P(PermutationSymmetryCases, LogDensityIsTheAverageOverRelabellingsAndInvariant) {
  const auto c = GetParam();
  auto symmetric = permutation_prior(c.num_free, c.dim, true), plain = permutation_prior(c.num_free, c.dim, false);
  torch::NoGradGuard no_grad;
  auto y = plain->sample(32);
  const auto group = all_permutations(c.num_free + 1);
  std::vector<torch::Tensor> terms;
  for (const auto& g : group) terms.push_back(plain->log_prob(relabel_anchored(y, g)));
  auto expected = torch::logsumexp(torch::stack(terms), 0) - std::log(static_cast<double>(group.size()));
  auto got = symmetric->log_prob(y);
  EXPECT_LT((got - expected).abs().max().item<double>(), 1e-10);
  for (const auto& g : group)
    EXPECT_LT((symmetric->log_prob(relabel_anchored(y, g)) - got).abs().max().item<double>(), 1e-10);
}

TEST_P(PermutationSymmetryCases, DensityIntegratesToOne) {
  // Relabelling moves the anchor; the map of y must keep volumes for the average to stay normalised.
  const auto c = GetParam();
  auto prior = permutation_prior(c.num_free, c.dim, true, 62);
  auto ratio = testing::ratios_to_wide_gaussian([&](const torch::Tensor& y) { return prior->log_prob(y); },
                                                100000, c.num_free, c.dim, 0.8, 63);
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.05));
}

TEST_P(PermutationSymmetryCases, SamplerMatchesTheAveragedDensity) {
  // E_q[q'/q] = 1 for the plain mixture q' under draws of the averaged q.
  const auto c = GetParam();
  auto symmetric = permutation_prior(c.num_free, c.dim, true, 64), plain = permutation_prior(c.num_free, c.dim, false, 64);
  torch::manual_seed(65);
  torch::NoGradGuard no_grad;
  auto y = symmetric->sample(50000);
  auto ratio = torch::exp(plain->log_prob(y) - symmetric->log_prob(y));
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.05));
}

INSTANTIATE_TEST_SUITE_P(PermutationSymmetry, PermutationSymmetryCases,
                         ::testing::Values(Case{3, 2}, Case{3, 3}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return "M" + std::to_string(info.param.num_free) + "_n" + std::to_string(info.param.dim);
                         });

std::shared_ptr<AnchoredEnergy> dw4() {
  return std::make_shared<AnchoredEnergy>(make_system("dw4"), 0);
}

MintPrior dw4_prior(int64_t components) {
  MintPriorOptions o;
  o.family = "gaussian";
  o.num_free = 3;
  o.dim = 2;
  o.components = components;
  return MintPrior(o);
}

TEST(HarmonicPrior, FrameHessianMatchesFiniteDifferences) {
  auto energy = dw4();
  auto prior = dw4_prior(2);
  torch::manual_seed(11);
  auto z = prior->frame_coordinates(energy->to_anchored(testing::lattice_configurations(2, 4, 2, 3.5, 0.4, 12)));
  auto hessian = frame_hessian(prior, *energy, z);
  const int64_t D = z.size(1);
  const double h = 1e-4;
  auto grad_at = [&](const torch::Tensor& zz) {
    torch::AutoGradMode grad_mode(true);
    auto v = zz.clone().requires_grad_(true);
    auto u = energy->value(prior->from_frame_coordinates(v), 1.0).sum();
    return torch::autograd::grad({u}, {v})[0];
  };
  for (int64_t d = 0; d < D; ++d) {
    auto step = torch::zeros_like(z);
    step.select(1, d).fill_(h);
    auto fd = (grad_at(z + step) - grad_at(z - step)) / (2 * h);
    EXPECT_LT((fd - hessian.select(1, d)).abs().max().item<double>(), 1e-5 * (1 + hessian.abs().max().item<double>()));
  }
}

TEST(HarmonicPrior, MergesRotatedMirroredAndRelabelledCopiesOfOneMinimum) {
  auto energy = dw4();
  auto prior = dw4_prior(8);
  torch::manual_seed(13);
  auto start = energy->to_anchored(testing::lattice_configurations(1, 4, 2, 3.8, 0.3, 14));
  auto minimum = minimize_energy(*energy, start).y;
  // The same minimum rotated, and mirrored: one distinct minimum before relabelling.
  auto rotated = minimum.matmul(testing::random_orthogonal(2, false, 15));
  auto mirrored = minimum.matmul(testing::random_orthogonal(2, true, 16));
  // A negligible floor: the harmonic basin mass is then exact Gaussian algebra, the same for every
  // labelling (the Hessian in z and the Jacobian |dy/dz| change together).
  HarmonicOptions options;
  options.hessian_floor = 1e-8;
  auto result = initialize_harmonic_prior_from(prior, *energy, torch::cat({minimum, rotated, mirrored}), options);
  EXPECT_EQ(result.candidates, 24);  // 4! labellings of the one distinct minimum
  ASSERT_GE(result.distinct, 1);
  EXPECT_LE(result.distinct, 24);
  // Every labelling has the same energy and harmonic free energy.
  for (const auto& m : result.minima) {
    EXPECT_NEAR(m.energy, result.minima[0].energy, 1e-8);
    EXPECT_NEAR(m.free_energy, result.minima[0].free_energy, 1e-6);
  }
  double total = 0;
  for (const auto& m : result.minima) total += m.weight;
  EXPECT_NEAR(total, 1.0, 1e-12);
  // Component means sit on minima: zero gradient of U there.
  torch::NoGradGuard no_grad;
  auto centres = prior->component_configurations();
  auto grad = energy->value_and_grad(centres, 1.0).grad;
  EXPECT_LT(grad.abs().max().item<double>(), 1e-4);
  // The precision is the (floored) Hessian: for a well-conditioned DW-4 minimum no floor applies.
  auto u = prior->precision_factor();
  auto precision = torch::matmul(u.transpose(1, 2), u);
  auto hessian = frame_hessian(prior, *energy, prior->mean.detach());
  auto eigenvalues = torch::linalg_eigvalsh(hessian);
  ASSERT_GT(eigenvalues.min().item<double>(), 1e-8);
  EXPECT_LT((precision - hessian).abs().max().item<double>(), 1e-6 * hessian.abs().max().item<double>());
}

TEST(HarmonicPrior, WideCopiesHoldTheTailWeightWithScaledCovariances) {
  auto energy = dw4();
  auto prior = dw4_prior(8);
  torch::manual_seed(19);
  HarmonicOptions options;
  options.starts_per_component = 2;
  options.tail_weight = 0.25;
  options.tail_scale = 3.0;
  auto result = initialize_harmonic_prior(prior, *energy, options);
  torch::NoGradGuard no_grad;
  auto mean = prior->mean.detach();
  auto u = prior->precision_factor();
  auto precision = torch::matmul(u.transpose(1, 2), u);
  auto weights = torch::softmax(prior->logits.detach(), 0);
  // The second half repeats the first half's basins, 3x wider, with a quarter of each weight.
  EXPECT_LT((mean.narrow(0, 4, 4) - mean.narrow(0, 0, 4)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((3.0 * precision.narrow(0, 4, 4) - precision.narrow(0, 0, 4)).abs().max().item<double>(),
            1e-9 * precision.abs().max().item<double>());
  EXPECT_NEAR((weights.narrow(0, 4, 4) / (weights.narrow(0, 0, 4) + weights.narrow(0, 4, 4))).min().item<double>(),
              0.25, 1e-12);
  EXPECT_NEAR((weights.narrow(0, 4, 4) / (weights.narrow(0, 0, 4) + weights.narrow(0, 4, 4))).max().item<double>(),
              0.25, 1e-12);
  double total = 0;
  for (const auto& m : result.minima) total += m.weight;
  EXPECT_NEAR(total, 1.0, 1e-12);
  // An odd number of components cannot be split into basins and their wide copies.
  auto odd = dw4_prior(7);
  EXPECT_THROW(initialize_harmonic_prior(odd, *energy, options), Error);
}

TEST(HarmonicPrior, Dw4HarmonicSuperpositionIsAGoodPrior) {
  // Harmonic components on the DW-4 minima found from random starts already give a usable
  // importance sampler with log Z near the independent reference 31.05 (DESIGN.md §3b).
  auto energy = dw4();
  auto prior = dw4_prior(64);
  torch::manual_seed(17);
  HarmonicOptions options;
  options.starts_per_component = 2;
  auto result = initialize_harmonic_prior(prior, *energy, options);
  EXPECT_GE(result.distinct, 20);
  auto summary = summarize_log_weights(prior_log_weights(prior, *energy, 20000));
  EXPECT_GT(summary.ess, 0.02);
  EXPECT_NEAR(summary.log_z, 31.05, 1.0);
}

}  // namespace
}  // namespace mintjulep

namespace mintjulep {
namespace {

TEST(MintSelection, KeepsTheParametersThatMeasuredBest) {
  // A harmonic DW-4 prior, then training with a learning rate so large that it spoils the prior:
  // with selection every step, training ends on the untouched initial parameters.
  auto energy = std::make_shared<AnchoredEnergy>(make_system("dw4"), 0);
  MintPriorOptions o;
  o.family = "gaussian";
  o.num_free = 3;
  o.dim = 2;
  o.components = 16;
  MintPrior prior(o);
  torch::manual_seed(21);
  HarmonicOptions h;
  h.starts_per_component = 2;
  initialize_harmonic_prior(prior, *energy, h);
  std::vector<torch::Tensor> initial;
  for (const auto& p : prior->parameters()) initial.push_back(p.detach().clone());
  MintTrainingOptions t;
  t.steps = 4;
  t.samples = 256;
  t.learning_rate = 0.5;
  t.beta_start = 1.0;
  t.warmup_steps = 0;
  t.repulsion = 0;
  t.log_every = 0;
  t.objective = "snis";
  t.select_every = 1;
  t.select_samples = 4000;
  auto result = train_mint(prior, *energy, t);
  ASSERT_EQ(result.selected_step, 0);
  EXPECT_GT(result.selected_ess, 0.01);
  auto params = prior->parameters();
  for (size_t i = 0; i < initial.size(); ++i) EXPECT_TRUE(torch::equal(params[i], initial[i])) << i;
  // Without selection the same training moves the parameters away.
  t.select_every = 0;
  train_mint(prior, *energy, t);
  EXPECT_FALSE(torch::equal(prior->parameters()[1], initial[1]));
}

}  // namespace
}  // namespace mintjulep
