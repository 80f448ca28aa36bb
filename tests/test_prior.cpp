// The Mint prior: special functions against quadrature, exact normalisation, O(n)
// invariance, sampler-density agreement, repulsion gradients, and training on a known target.
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/mint_training.hpp>
#include <mintjulep/pair_energies.hpp>
#include <mintjulep/projected_normal.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "test_helpers.hpp"

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;
auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

// Composite Simpson rule of exp(log_f) on [lo, hi], returned as a log, shifted by `shift`.
template <class LogF>
double log_simpson(LogF log_f, double lo, double hi, int64_t intervals, double shift) {
  auto r = torch::linspace(lo, hi, intervals + 1, f64);
  auto w = torch::ones({intervals + 1}, f64);
  w.slice(0, 1, intervals, 2).fill_(4.0);
  w.slice(0, 2, intervals, 2).fill_(2.0);
  const double h = (hi - lo) / static_cast<double>(intervals);
  return shift + std::log((w * torch::exp(log_f(r) - shift)).sum().template item<double>() * h / 3);
}

TEST(ProjectedNormal, LogGMatchesQuadratureForAllArguments) {
  for (double a : {-60.0, -25.0, -8.0, -5.001, -4.999, -2.0, 0.0, 1.5, 12.0, 35.0}) {
    for (int k = 0; k <= 2; ++k) {
      const double shift = a > 0 ? a * a / 2 : 0.0;
      auto log_f = [&](const torch::Tensor& r) {
        return (k > 0 ? k * torch::log(r.clamp_min(1e-300)) : torch::zeros_like(r)) - r * r / 2 + a * r;
      };
      const double hi = std::max(a, 0.0) + 14.0;
      const double reference = log_simpson(log_f, 0.0, hi, 400000, shift);
      const double value = log_g(torch::tensor({a}, f64), k).item<double>();
      EXPECT_NEAR(value, reference, 1e-9) << "a = " << a << ", k = " << k;
    }
  }
}

TEST(ProjectedNormal, GradientOfLogGIsFiniteAndMatchesFiniteDifferences) {
  auto a = torch::tensor({-40.0, -5.0 - 1e-3, -5.0 + 1e-3, 0.3, 20.0}, f64).requires_grad_(true);
  for (int k = 0; k <= 2; ++k) {
    auto grad = torch::autograd::grad({log_g(a, k).sum()}, {a})[0];
    const double h = 1e-6;
    auto fd = (log_g(a.detach() + h, k) - log_g(a.detach() - h, k)) / (2 * h);
    EXPECT_TRUE(torch::allclose(grad, fd, 1e-6, 1e-8)) << "k = " << k << "\n" << grad << fd;
  }
}

// PN_d(theta; m) = int_0^inf r^(d-1) N(r theta; m, I) dr, its defining integral.
TEST(ProjectedNormal, MatchesItsDefiningIntegralAndIsNormalisedOnTheSphere) {
  for (int64_t d : {2, 3}) {
    for (double kappa : {0.5, 9.0, 400.0}) {
      for (double cos_angle : {1.0, 0.3, -0.7, -1.0}) {
        const double m = std::sqrt(kappa);
        auto log_f = [&](const torch::Tensor& r) {
          // |r theta - m|^2 = r^2 - 2 r m cos + m^2
          return static_cast<double>(d - 1) * torch::log(r.clamp_min(1e-300)) -
                 (r * r - 2 * r * m * cos_angle + m * m) / 2 - 0.5 * d * std::log(2 * kPi);
        };
        const double reference = log_simpson(log_f, 0.0, m + 14.0, 200000, 0.0);
        const double value =
            log_projected_normal(torch::tensor({cos_angle}, f64), torch::tensor({kappa}, f64), d)
                .item<double>();
        EXPECT_NEAR(value, reference, 1e-8) << "d = " << d << " kappa = " << kappa;
      }
      // Normalisation: 2D int dphi PN(cos phi) = 1; 3D 2 pi int_{-1}^{1} PN(c) dc = 1.
      const int64_t n = 200000;
      auto grid = torch::linspace(0, kPi, n + 1, f64);
      auto c = d == 2 ? torch::cos(grid) : torch::linspace(-1, 1, n + 1, f64);
      auto p = torch::exp(log_projected_normal(c, torch::full_like(c, kappa), d));
      auto w = torch::ones({n + 1}, f64);
      w.slice(0, 1, n, 2).fill_(4.0);
      w.slice(0, 2, n, 2).fill_(2.0);
      const double h = (d == 2 ? kPi : 2.0) / static_cast<double>(n);
      const double total = 2 * (d == 2 ? 1.0 : kPi) * (w * p).sum().item<double>() * h / 3;
      EXPECT_NEAR(total, 1.0, 1e-9) << "d = " << d << " kappa = " << kappa;
    }
  }
}

MintPrior make_prior(int64_t num_free, int64_t dim, int64_t components, bool invariant,
                     uint64_t seed, double kappa = 3.0, double sigma = 0.25) {
  torch::manual_seed(seed);
  MintPriorOptions o;
  o.num_free = num_free;
  o.dim = dim;
  o.components = components;
  o.invariant = invariant;
  o.kappa = kappa;
  o.sigma = sigma;
  o.radius = 1.0;
  MintPrior prior(o);
  torch::NoGradGuard no_grad;
  prior->logits.copy_(torch::randn({components}, f64));  // unequal weights
  prior->log_kappa.add_(0.5 * torch::randn({components}, f64));
  return prior;
}

struct PriorCase {
  int64_t num_free, dim;
  bool invariant;
};
void PrintTo(const PriorCase& c, std::ostream* os) {
  *os << "M" << c.num_free << "_n" << c.dim << (c.invariant ? "_invariant" : "_fixed");
}

class PriorCases : public ::testing::TestWithParam<PriorCase> {};

TEST_P(PriorCases, DensityIntegratesToOne) {
  // E_p[q/p] over a wide Gaussian p = N(0, s^2 I) on R^(M n); must be 1 within 3 standard errors.
  const auto c = GetParam();
  auto prior = make_prior(c.num_free, c.dim, 3, c.invariant, 1, 1.0, 0.3);
  auto ratio = testing::ratios_to_wide_gaussian([&](const torch::Tensor& y) { return prior->log_prob(y); },
                                                400000, c.num_free, c.dim, 0.8, 2);
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.05));
}

TEST_P(PriorCases, SamplerMatchesDensity) {
  // E_q[q'/q] = 1 for any normalised q' (here: the same family with perturbed parameters)
  // only if the samples come from the density q.
  const auto c = GetParam();
  auto q = make_prior(c.num_free, c.dim, 4, c.invariant, 3);
  auto q2 = make_prior(c.num_free, c.dim, 4, c.invariant, 3);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : q2->parameters()) p.add_(0.1 * torch::randn_like(p));
  }
  torch::manual_seed(4);
  const int64_t count = 200000;
  torch::NoGradGuard no_grad;
  auto y = q->sample(count);
  auto ratio = torch::exp(q2->log_prob(y) - q->log_prob(y));
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.02));
}

TEST_P(PriorCases, GradientInYMatchesFiniteDifferences) {
  const auto c = GetParam();
  auto prior = make_prior(c.num_free, c.dim, 3, c.invariant, 5);
  auto y = prior->sample(4).requires_grad_(true);
  auto grad = torch::autograd::grad({prior->log_prob(y).sum()}, {y})[0];
  const int64_t d = c.num_free * c.dim;
  auto eye = torch::eye(d, f64).reshape({d, 1, c.num_free, c.dim});
  auto yd = y.detach().unsqueeze(0);
  const double h = 1e-6;
  torch::NoGradGuard no_grad;
  auto plus = prior->log_prob((yd + h * eye).reshape({-1, c.num_free, c.dim})).view({d, -1});
  auto minus = prior->log_prob((yd - h * eye).reshape({-1, c.num_free, c.dim})).view({d, -1});
  auto fd = ((plus - minus) / (2 * h)).t().reshape_as(grad);
  EXPECT_LT((fd - grad).norm().item<double>() / grad.norm().item<double>(), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Prior, PriorCases,
                         ::testing::Values(PriorCase{3, 2, true}, PriorCase{3, 3, true},
                                           PriorCase{2, 3, true}, PriorCase{3, 2, false},
                                           PriorCase{3, 3, false}));

TEST(MintPrior, InvariantUnderRotationsAndReflections) {
  for (int64_t dim : {2, 3}) {
    auto prior = make_prior(5, dim, 4, true, 6);
    torch::NoGradGuard no_grad;
    auto y = prior->sample(64);
    auto reference = prior->log_prob(y);
    for (bool reflect : {false, true}) {
      auto q = testing::random_orthogonal(dim, reflect, 7 + reflect);
      const double diff = (prior->log_prob(y.matmul(q)) - reference).abs().max().item<double>();
      EXPECT_LT(diff, 1e-12) << "n = " << dim << " reflect = " << reflect;
    }
  }
}

TEST(MintPrior, PathLogProbIsLogProbExceptWhereTheFrameIsSoftened) {
  // The annealing reuses the path's log q as the exact one where path_log_prob_is_exact() says so.
  torch::NoGradGuard no_grad;
  for (int64_t dim : {2, 3}) {
    for (bool invariant : {true, false}) {
      auto prior = make_prior(3, dim, 4, invariant, 21);
      auto y = prior->sample(64);
      // All particles nearly on one line through the anchor: the frame's b_2 is ~1e-3.
      for (int64_t i : {1, 2})
        y.select(1, i).copy_((0.5 + 0.3 * i) * y.select(1, 0) + 1e-3 * torch::randn_like(y.select(1, 0)));
      const double gap = (prior->path_log_prob(y) - prior->log_prob(y)).abs().max().item<double>();
      const bool softened = invariant && dim == 3;
      EXPECT_EQ(prior->path_log_prob_is_exact(), !softened);
      if (softened) EXPECT_GT(gap, 1e-6);
      else EXPECT_EQ(gap, 0.0);
    }
  }
}

TEST(MintPrior, FixedOrientationVariantIsNotInvariantButCovariant) {
  for (int64_t dim : {2, 3}) {
    auto prior = make_prior(4, dim, 3, false, 8, 20.0);
    torch::NoGradGuard no_grad;
    auto y = prior->sample(64);
    auto reference = prior->log_prob(y);
    auto q = testing::random_orthogonal(dim, false, 9);
    EXPECT_GT((prior->log_prob(y.matmul(q)) - reference).abs().max().item<double>(), 1e-2);
    // Rotating y and every mu together leaves the density unchanged.
    prior->mu.copy_(prior->mu.matmul(q));
    EXPECT_LT((prior->log_prob(y.matmul(q)) - reference).abs().max().item<double>(), 1e-12);
  }
}

// Kolmogorov-Smirnov statistic of samples x against a CDF evaluated at the sorted samples.
double ks_statistic(const torch::Tensor& sorted_cdf) {
  const int64_t n = sorted_cdf.numel();
  auto i = torch::arange(1, n + 1, f64);
  auto upper = (i / n - sorted_cdf).max(), lower = (sorted_cdf - (i - 1) / n).max();
  return std::max(upper.item<double>(), lower.item<double>());
}

TEST(MintPrior, RadiusAndAngleDistributionsPassKolmogorovSmirnov) {
  const int64_t count = 20000;
  const double critical = 1.95 / std::sqrt(static_cast<double>(count));  // alpha = 0.001
  // Radius of the first frame particle: a mixture of log-normals.
  auto prior = make_prior(4, 3, 3, true, 10);
  torch::NoGradGuard no_grad;
  auto y = prior->sample(count);
  auto r = std::get<0>(y.select(1, 0).norm(2, -1).sort());
  auto z = (r.log().unsqueeze(1) - prior->rho.select(1, 0)) / prior->sigma().select(1, 0);
  auto cdf = (prior->weights() * 0.5 * torch::erfc(-z / std::sqrt(2.0))).sum(1);
  EXPECT_LT(ks_statistic(cdf), critical);
  // theta . mu of one particle of a one-component fixed prior in 3D: density 2 pi PN_3(c).
  auto fixed = make_prior(3, 3, 1, false, 11, 4.0);
  auto v = fixed->sample(count).select(1, 2);
  auto c = std::get<0>(((v / v.norm(2, -1, true)) * fixed->unit_directions()[0][2]).sum(-1).sort());
  auto grid = torch::linspace(-1, 1, 200001, f64);
  auto density = 2 * kPi * torch::exp(log_projected_normal(grid, torch::full_like(grid, fixed->kappa()[0].item<double>()), 3));
  auto table = torch::cumsum((density.slice(0, 1) + density.slice(0, 0, -1)) * 0.5e-5, 0);
  table = torch::cat({torch::zeros({1}, f64), table});
  auto idx = ((c + 1) / 1e-5).round().to(torch::kLong).clamp(0, 200000);
  EXPECT_LT(ks_statistic(table.index_select(0, idx)), critical);
  EXPECT_NEAR(table[-1].item<double>(), 1.0, 1e-6);
  // A wrong law fails the same test: radii of the second particle are not those of the first.
  auto r2 = std::get<0>(y.select(1, 1).norm(2, -1).sort());
  auto z2 = (r2.log().unsqueeze(1) - prior->rho.select(1, 0)) / prior->sigma().select(1, 0);
  EXPECT_GT(ks_statistic((prior->weights() * 0.5 * torch::erfc(-z2 / std::sqrt(2.0))).sum(1)), critical);
}

TEST(MintPrior, RepulsionGradientMatchesFiniteDifferences) {
  for (bool invariant : {true, false}) {
    auto prior = make_prior(4, 3, 5, invariant, 12);
    auto grad = torch::autograd::grad({prior->repulsion()}, {prior->mu})[0];
    torch::NoGradGuard no_grad;
    auto flat = prior->mu.view({-1});
    auto fd = torch::zeros_like(flat);
    const double h = 1e-6;
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double old = flat[i].item<double>();
      flat[i] = old + h;
      const double plus = prior->repulsion().item<double>();
      flat[i] = old - h;
      const double minus = prior->repulsion().item<double>();
      flat[i] = old;
      fd[i] = (plus - minus) / (2 * h);
    }
    EXPECT_LT((fd - grad.view({-1})).norm().item<double>() / grad.norm().item<double>(), 1e-6);
    EXPECT_GT(grad.norm().item<double>(), 1e-3);
  }
}

TEST(MintPrior, RejectsBadOptions) {
  MintPriorOptions o;
  o.num_free = 3;
  o.dim = 4;
  EXPECT_THROW(MintPrior{o}, Error);
  o.dim = 3;
  o.frame = {1, 1};
  EXPECT_THROW(MintPrior{o}, Error);
  o.frame = {0, 1};
  MintPrior ok(o);
  EXPECT_THROW(ok->log_prob(torch::zeros({2, 4, 3}, f64)), Error);
}

// Distances between all rows of (M, n) coordinates plus the origin (the anchor).
torch::Tensor all_distances(const torch::Tensor& y) {
  auto with_anchor = torch::cat({torch::zeros({1, y.size(1)}, y.options()), y});
  return torch::cdist(with_anchor, with_anchor);
}

TEST(MintPrior, InitializeFromTemplatesReproducesTheirShapes) {
  for (int64_t n : {2, 3}) {
    for (bool invariant : {true, false}) {
      MintPriorOptions o;
      o.num_free = 5;
      o.dim = n;
      o.components = 3;
      o.invariant = invariant;
      o.frame = {2, 0};  // frame rows first: component rows are in the order 2, 0, 1, 3, 4
      MintPrior prior(o);
      torch::manual_seed(4);
      auto templates = torch::randn({3, 5, n}, f64);
      prior->initialize_from(templates);
      auto order = torch::tensor({2, 0, 1, 3, 4}, torch::kLong);
      for (int64_t k = 0; k < 3; ++k) {
        auto typical = prior->component_configurations()[k];
        auto expected = invariant ? templates[k].index_select(0, order) : templates[k];
        // The component's typical configuration is the template up to a rotation/reflection.
        EXPECT_LT((all_distances(typical) - all_distances(expected)).abs().max().item<double>(), 1e-12)
            << "n = " << n << ", invariant = " << invariant << ", component " << k;
      }
    }
  }
}

// A Gaussian mixture over the shape of a 3-particle 2D system: two modes in the space of the
// three pair distances, an equilateral triangle of side 2 and a 3-4-5 right triangle.
class TriangleMixture : public Energy {
 public:
  std::string name() const override { return "triangle-mixture"; }
  int64_t num_particles() const override { return 3; }
  int64_t dim() const override { return 2; }
  double length_scale() const override { return 2.5; }
  torch::Tensor energy(const torch::Tensor& x, double) const override {
    auto d = std::get<0>(pair_distances(x).sort(-1));  // sorted: permutation invariant
    auto modes = torch::tensor({{2.0, 2.0, 2.0}, {3.0, 4.0, 5.0}}, x.options());
    auto sq = (d.unsqueeze(1) - modes.unsqueeze(0)).pow(2).sum(-1) / (2 * 0.15 * 0.15);
    return -torch::logsumexp(-sq, 1);
  }
};

class MintObjective : public ::testing::TestWithParam<std::string> {};

TEST_P(MintObjective, RecoversBothModesOfAGaussianMixture) {
  torch::manual_seed(13);
  auto target = std::make_shared<TriangleMixture>();
  AnchoredEnergy energy(target, 0);
  MintPriorOptions o;
  o.num_free = 2;
  o.dim = 2;
  o.components = 8;
  o.radius = 2.5;
  o.radius_spread = 0.4;
  o.kappa = 2.0;
  MintPrior prior(o);
  MintTrainingOptions t;
  t.steps = 600;
  t.samples = 512;
  t.learning_rate = 3e-2;
  t.warmup_steps = 200;
  t.log_every = 0;
  t.objective = GetParam();
  train_mint(prior, energy, t);
  torch::NoGradGuard no_grad;
  auto fraction_near = [&](const torch::Tensor& y, const torch::Tensor& weight, std::vector<double> mode) {
    auto d = std::get<0>(pair_distances(energy.to_full(y)).sort(-1));
    auto near = (std::get<0>((d - torch::tensor(mode, f64)).abs().max(-1)) < 0.45).to(torch::kFloat64);
    return ((near * weight).sum() / weight.sum()).item<double>();
  };
  // Reference mode masses by brute force: uniform samples in a box around the anchor, weighted
  // by exp(-U). The right triangle has more labelled versions, so it carries more mass.
  auto box = 12 * torch::rand({1000000, 2, 2}, f64) - 6;
  auto box_weight = torch::exp(-energy.value(box));
  const double ref_equilateral = fraction_near(box, box_weight, {2, 2, 2});
  const double ref_right = fraction_near(box, box_weight, {3, 4, 5});
  ASSERT_GT(ref_equilateral, 0.02);
  ASSERT_GT(ref_equilateral + ref_right, 0.95);
  auto y = prior->sample(8000);
  auto ones = torch::ones({8000}, f64);
  const double equilateral = fraction_near(y, ones, {2, 2, 2}), right = fraction_near(y, ones, {3, 4, 5});
  EXPECT_NEAR(equilateral, ref_equilateral, 0.5 * ref_equilateral);
  EXPECT_NEAR(right, ref_right, 0.5 * ref_right);
  EXPECT_GT(equilateral + right, 0.7);
  // And the importance weights are well behaved.
  EXPECT_GT(summarize_log_weights(prior_log_weights(prior, energy, 4000)).ess, 0.2);
}

// "snis" reweights prior draws; "langevin" fits MALA walkers. Both must find both modes with
// the right masses.
INSTANTIATE_TEST_SUITE_P(Objectives, MintObjective, ::testing::Values("snis", "snis+langevin"),
                         [](const auto& info) {
                           auto name = info.param;
                           std::replace(name.begin(), name.end(), '+', '_');
                           return name;
                         });

TEST(MintTraining, RejectsUnknownObjectiveTerms) {
  EXPECT_NO_THROW(check_mint_objective("snis+langevin"));
  EXPECT_THROW(check_mint_objective("snis+forward"), Error);
  EXPECT_THROW(check_mint_objective(""), Error);
}

// A Mint run interrupted after a saved state and resumed into a fresh prior must end where the
// uninterrupted run ends, bit for bit: parameters, Adam moments, generator, walker pool and
// best-so-far snapshot all carry over.
TEST(MintTraining, ResumedTrainingRepeatsTheUninterruptedRun) {
  auto target = std::make_shared<TriangleMixture>();
  AnchoredEnergy energy(target, 0);
  MintPriorOptions o;
  o.num_free = 2;
  o.dim = 2;
  o.components = 4;
  o.radius = 2.5;
  auto fresh_prior = [&](uint64_t seed) {
    torch::manual_seed(seed);
    return MintPrior(o);
  };
  MintTrainingOptions t;
  t.steps = 9;
  t.samples = 64;
  t.warmup_steps = 4;
  t.log_every = 1;
  t.objective = "snis+reverse_kl+langevin";
  t.langevin_steps = 2;
  t.langevin_burn_in = 2;
  t.langevin_refresh = 0.2;
  t.select_every = 3;
  t.select_samples = 200;
  t.checkpoint_every = 2;
  const auto state = (std::filesystem::temp_directory_path() /
                      ("mintjulep_test_mint_state_" + std::to_string(std::random_device{}()) + ".pt"))
                         .string();
  struct RemoveAtExit {
    std::string path;
    ~RemoveAtExit() { std::filesystem::remove(path); }
  } cleanup{state};

  auto whole = fresh_prior(3);
  auto uninterrupted = train_mint(whole, energy, t);
  const auto next_draws = torch::rand({4}, f64);

  auto parts = fresh_prior(3);
  t.state_path = state;
  struct Interrupt {};
  EXPECT_THROW(train_mint(parts, energy, t, [](const MintProgress& p) {
                 if (p.step == 6) throw Interrupt{};
               }),
               Interrupt);
  auto resumed_prior = fresh_prior(3);
  torch::manual_seed(77);  // the saved generator state must replace whatever the generator holds
  int64_t first_call = -1;
  auto resumed = train_mint(resumed_prior, energy, t, {}, [&](int64_t done) {
    if (first_call < 0) first_call = done;
  });
  EXPECT_EQ(resumed.resumed_from, 6);  // saved after 2, 4 and 6 steps; the 7th was lost
  EXPECT_EQ(first_call, 6);
  EXPECT_EQ(uninterrupted.resumed_from, -1);
  EXPECT_EQ(resumed.steps, uninterrupted.steps);
  EXPECT_EQ(resumed.selected_step, uninterrupted.selected_step);
  EXPECT_EQ(resumed.selected_ess, uninterrupted.selected_ess);
  EXPECT_EQ(resumed.dropped, uninterrupted.dropped);
  auto a = whole->named_parameters();
  auto b = resumed_prior->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < b.size(); ++i)
    EXPECT_TRUE(torch::equal(a[i].value(), b[i])) << a[i].key();
  EXPECT_TRUE(torch::equal(torch::rand({4}, f64), next_draws));  // the generator went on as well

  t.samples = 65;  // a state from other settings is refused with a clear error
  EXPECT_THROW(train_mint(resumed_prior, energy, t), Error);
}

TEST(MintFit, RelabellingPermutesOnlyParticlesOfTheSameType) {
  torch::manual_seed(21);
  auto x = torch::randn({64, 5, 2}, f64);
  const std::vector<int64_t> types{0, 1, 0, 1, 0};
  auto relabelled = relabel_identical_particles(x, types);
  int64_t changed = 0;
  for (int64_t type : {0, 1}) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < 5; ++i)
      if (types[static_cast<size_t>(i)] == type) rows.push_back(i);
    auto idx = torch::tensor(rows, torch::kLong);
    // Same set of rows per configuration: compare after sorting by the first coordinate.
    auto sorted = [&](const torch::Tensor& t) {
      auto part = t.index_select(1, idx);
      auto order = std::get<1>(part.select(2, 0).sort(1));
      return part.gather(1, order.unsqueeze(-1).expand({-1, -1, 2}));
    };
    EXPECT_TRUE(torch::equal(sorted(x), sorted(relabelled)));
    changed += (x.index_select(1, idx) != relabelled.index_select(1, idx)).any(2).any(1).sum().item<int64_t>();
  }
  EXPECT_GT(changed, 32);  // most configurations were actually permuted
}

TEST(MintFit, MaximumLikelihoodRecoversTheDensityOfItsSamples) {
  auto system = make_system("dw4");
  AnchoredEnergy energy(system, 0);
  MintPriorOptions o;
  o.num_free = 3;
  o.dim = 2;
  o.components = 1;
  o.kappa = 20.0;
  o.sigma = 0.1;
  o.radius = 3.0;
  torch::manual_seed(22);
  MintPrior truth(o);
  o.components = 2;
  o.kappa = 4.0;
  o.sigma = 0.3;
  MintPrior fitted(o);
  torch::Tensor train, test;
  {
    torch::NoGradGuard no_grad;
    train = energy.to_full(truth->sample(4000));
    test = truth->sample(4000);
  }
  MintTrainingOptions t;
  t.steps = 400;
  t.samples = 512;
  t.learning_rate = 3e-2;
  t.repulsion = 0;
  t.log_every = 0;
  auto result = fit_mint_to_samples(fitted, energy, train, t, /*relabel=*/false);
  EXPECT_EQ(result.steps, 400);
  torch::NoGradGuard no_grad;
  // KL(truth || fitted) on held-out samples, with its standard error.
  auto gap = truth->log_prob(test) - fitted->log_prob(test);
  const double kl = gap.mean().item<double>(), se = gap.std().item<double>() / std::sqrt(4000.0);
  EXPECT_LT(kl, 0.05 + 3 * se);
  // Before fitting the gap was large: the check has teeth.
  MintPrior fresh(o);
  EXPECT_GT((truth->log_prob(test) - fresh->log_prob(test)).mean().item<double>(), 1.0);
  EXPECT_THROW(fit_mint_to_samples(fitted, energy, train.narrow(2, 0, 1), t, false), Error);
}


// ---- The isotropic family (the PIS/DDS baselines' prior, DESIGN.md §5) -----------------------

MintPrior make_isotropic_prior(int64_t num_free, int64_t dim, double scale) {
  MintPriorOptions o;
  o.family = "isotropic";
  o.num_free = num_free;
  o.dim = dim;
  o.components = 1;
  o.scale = scale;
  return MintPrior(o);
}

TEST(IsotropicPrior, LogProbIsTheClosedFormAndInvariant) {
  for (int64_t dim : {2, 3}) {
    auto prior = make_isotropic_prior(4, dim, 0.7);
    torch::NoGradGuard no_grad;
    torch::manual_seed(3);
    auto y = torch::randn({32, 4, dim}, f64);
    const double s = 0.7, D = static_cast<double>(4 * dim);
    auto expected = -0.5 * y.pow(2).sum({1, 2}) / (s * s) - D * std::log(s) - 0.5 * D * std::log(2 * kPi);
    EXPECT_LT((prior->log_prob(y) - expected).abs().max().item<double>(), 1e-12);
    EXPECT_LT((prior->path_log_prob(y) - expected).abs().max().item<double>(), 1e-12);
    for (bool reflect : {false, true}) {
      auto q = testing::random_orthogonal(dim, reflect, 11 + reflect);
      EXPECT_LT((prior->log_prob(y.matmul(q)) - expected).abs().max().item<double>(), 1e-12);
    }
  }
}

TEST(IsotropicPrior, SamplerMatchesDensity) {
  // E_q[q'/q] = 1 for a wider isotropic q', and |y|^2 / s^2 of the samples is chi-squared with
  // D degrees of freedom: mean D within 3 standard errors (variance 2D).
  auto prior = make_isotropic_prior(3, 3, 0.5), wider = make_isotropic_prior(3, 3, 0.6);
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const int64_t count = 200000;
  auto y = prior->sample(count);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{count, 3, 3}));
  EXPECT_TRUE(testing::mean_is_one(torch::exp(wider->log_prob(y) - prior->log_prob(y)), 0.01));
  const double D = 9, chi2_mean = (y.pow(2).sum({1, 2}) / 0.25).mean().item<double>();
  EXPECT_LT(std::abs(chi2_mean - D), 3 * std::sqrt(2 * D / count));
}

TEST(IsotropicPrior, GradientsMatchFiniteDifferencesAndDefaultScaleFollowsRadius) {
  auto prior = make_isotropic_prior(3, 2, 0.8);
  torch::manual_seed(9);
  auto y = torch::randn({5, 3, 2}, f64).requires_grad_(true);
  auto lp = prior->log_prob(y);
  auto grads = torch::autograd::grad({lp.sum()}, {y, prior->log_scale});
  // d/dy = -y / s^2 exactly; d/dlog s against a central difference.
  EXPECT_LT((grads[0] + y.detach() / 0.64).abs().max().item<double>(), 1e-12);
  const double h = 1e-6;
  torch::NoGradGuard no_grad;
  prior->log_scale.add_(h);
  const double up = prior->log_prob(y.detach()).sum().item<double>();
  prior->log_scale.sub_(2 * h);
  const double down = prior->log_prob(y.detach()).sum().item<double>();
  EXPECT_NEAR(grads[1].item<double>(), (up - down) / (2 * h), 1e-6);

  MintPriorOptions o;
  o.family = "isotropic";
  o.num_free = 3;
  o.dim = 3;
  o.components = 1;
  o.radius = 2.0;
  EXPECT_NEAR(MintPrior(o)->scale().item<double>(), 2.0 / std::sqrt(3.0), 1e-14);
}

TEST(IsotropicPrior, RejectsMoreThanOneComponentAndTemplates) {
  MintPriorOptions o;
  o.family = "isotropic";
  o.num_free = 3;
  o.dim = 3;
  o.components = 2;
  EXPECT_THROW(MintPrior{o}, Error);
  o.components = 1;
  MintPrior prior(o);
  EXPECT_THROW(prior->initialize_from(torch::zeros({1, 3, 3}, f64)), Error);
  EXPECT_DOUBLE_EQ(prior->repulsion().item<double>(), 0.0);
}

}  // namespace
}  // namespace mintjulep
