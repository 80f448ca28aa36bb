// Exact annealing (DESIGN.md §4b): MALA-AIS weights with E[w] = Z, SMC's Z_hat unbiased with
// MALA and with Julep increments, systematic resampling, and agreement with the Julep AIS path.
#include <mintjulep/annealing.hpp>
#include <mintjulep/egnn.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/julep_training.hpp>
#include <mintjulep/mint_prior.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;
auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

// U = 0.5 sum_i sum_k lambda_k (y_ik - m_ik)^2 on anchored coordinates: Z = prod_k (2 pi / lambda_k)^(M/2).
class AnisotropicGaussian : public Energy {
 public:
  AnisotropicGaussian(torch::Tensor means, std::vector<double> lambda)
      : means_(std::move(means)), lambda_(std::move(lambda)) {}
  std::string name() const override { return "anisotropic-gaussian"; }
  int64_t num_particles() const override { return means_.size(0) + 1; }
  int64_t dim() const override { return static_cast<int64_t>(lambda_.size()); }
  double length_scale() const override { return 1.0; }
  torch::Tensor energy(const torch::Tensor& x, double) const override {
    auto rel = (x - x.narrow(1, 0, 1)).narrow(1, 1, means_.size(0)) - means_.to(x.options());
    return 0.5 * (rel.pow(2) * torch::tensor(lambda_, x.options())).sum({1, 2});
  }
  double log_z() const {
    double v = 0;
    for (double l : lambda_) v += 0.5 * static_cast<double>(means_.size(0)) * std::log(2 * kPi / l);
    return v;
  }

 private:
  torch::Tensor means_;
  std::vector<double> lambda_;
};

// Three particles in 2D. Relative to the first, the second follows a two-mode mixture
// sum_k a_k N(m_k, s_k^2 I) and the third a normalised Gaussian: Z = sum_k a_k.
class GaussianMixture2D : public Energy {
 public:
  std::string name() const override { return "mixture-2d"; }
  int64_t num_particles() const override { return 3; }
  int64_t dim() const override { return 2; }
  double length_scale() const override { return 1.0; }
  torch::Tensor energy(const torch::Tensor& x, double) const override {
    auto y = (x.select(1, 1) - x.select(1, 0)).unsqueeze(1);       // (B, 1, 2)
    auto m = torch::tensor({{2.0, 0.0}, {-1.0, 1.5}}, x.options());  // (K, 2)
    auto s = torch::tensor({0.4, 0.6}, x.options());
    auto a = torch::tensor({1.0, 3.0}, x.options());
    auto sq = (y - m.unsqueeze(0)).pow(2).sum(-1);                  // (B, K)
    auto log_terms = a.log() - sq / (2 * s.pow(2)) - torch::log(2 * kPi * s.pow(2));
    auto third = x.select(1, 2) - x.select(1, 0) - torch::tensor({0.0, 2.0}, x.options());
    const double s3 = 0.5;
    return -torch::logsumexp(log_terms, 1) + third.pow(2).sum(-1) / (2 * s3 * s3) +
           std::log(2 * kPi * s3 * s3);
  }
  static double z() { return 4.0; }
  // The prior: one broad component between the two modes and on the third particle's place.
  static torch::Tensor prior_centre() { return torch::tensor({{{0.5, 1.0}, {0.0, 2.0}}}, f64); }
};

// A fixed-orientation prior with one component per row of `centres` (K, M, n).
MintPrior prior_on(const torch::Tensor& centres, double kappa, double sigma) {
  MintPriorOptions po;
  po.num_free = centres.size(1);
  po.dim = centres.size(2);
  po.components = centres.size(0);
  po.invariant = false;
  MintPrior prior(po);
  torch::NoGradGuard no_grad;
  prior->mu.copy_(centres);
  prior->rho.copy_(centres.norm(2, -1).log());
  prior->log_kappa.fill_(std::log(kappa));
  prior->log_sigma.fill_(std::log(sigma));
  for (auto& p : prior->parameters()) p.set_requires_grad(false);
  return prior;
}

struct MeanCheck {
  double mean, se;
};

MeanCheck mean_of_ratio(const torch::Tensor& log_w, double log_z) {
  auto w = torch::exp(log_w - log_z);
  return {w.mean().item<double>(), w.std().item<double>() / std::sqrt(static_cast<double>(w.numel()))};
}

// Z_hat of each of the count / chunk independent SMC runs in one anneal() result.
torch::Tensor per_run_log_z(const torch::Tensor& log_w, int64_t chunk) {
  auto rows = log_w.view({-1, chunk});
  return torch::logsumexp(rows, 1) - std::log(static_cast<double>(chunk));
}

TEST(Annealing, SystematicResamplingFollowsTheWeights) {
  auto log_w = torch::log(torch::tensor({0.1, 0.0, 0.6, 0.3}, f64)) + 5.0;
  auto counts = torch::zeros({4}, f64);
  for (int i = 0; i < 50; ++i) {
    auto index = systematic_resample(log_w.repeat_interleave(25), (i + 0.5) / 50);
    counts += torch::bincount(index.div(25, "floor"), {}, 4).to(torch::kFloat64);
  }
  // Systematic resampling gives each particle floor or ceil of n w_i copies.
  auto expected = torch::tensor({0.1, 0.0, 0.6, 0.3}, f64) * 100 * 50;
  EXPECT_LT((counts - expected).abs().max().item<double>(), 50.0 + 1e-9);
  EXPECT_EQ(counts[1].item<double>(), 0.0);
}

TEST(Annealing, SystematicResamplingDrawsAnyNumberAndSkipsNonFiniteWeights) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  auto log_w = torch::tensor({std::log(0.1), nan, std::log(0.2), -inf, std::log(0.7), inf}, f64) - 3.0;
  auto index = systematic_resample(log_w, 0.37, 1000);
  ASSERT_EQ(index.size(0), 1000);
  auto counts = torch::bincount(index, {}, 6);
  // floor or ceil of count * w_i copies; NaN and +-inf weigh nothing.
  EXPECT_TRUE(torch::equal(counts, torch::tensor({100, 0, 200, 0, 700, 0}, torch::kLong)));
  EXPECT_EQ(systematic_resample(log_w, 0.5, 3).size(0), 3);
  EXPECT_THROW(systematic_resample(torch::tensor({nan, -inf}, f64), 0.5, 10), Error);
}

TEST(Annealing, MalaAisIsUnbiasedForAnAnisotropicGaussian) {
  auto means = torch::tensor({{2.0, 0.0}, {0.0, 2.0}, {-1.5, -1.5}}, f64);
  auto target = std::make_shared<AnisotropicGaussian>(means, std::vector<double>{2.0, 8.0});
  AnchoredEnergy energy(target, 0);
  auto prior = prior_on(means.unsqueeze(0), 3.0, 0.4);
  AnnealOptions o;
  o.method = "mala";
  o.steps = 8;
  o.moves = 1;
  o.step_size = 0.05;
  o.pilot = 200;
  o.chunk = 5000;
  auto r = anneal(o, prior, energy, nullptr, 20000, 1);
  auto c = mean_of_ratio(r.log_w, target->log_z());
  EXPECT_LT(c.se, 0.05);
  EXPECT_NEAR(c.mean, 1.0, 3 * c.se) << "standard error " << c.se;
  EXPECT_GT(std::abs(c.mean * std::exp(0.2) - 1.0), 3 * c.se);  // a 20% error would show
  EXPECT_EQ(r.num_non_finite, 0);
  EXPECT_EQ(r.resampling_events, 0);
  ASSERT_EQ(r.acceptance.size(), 8u);
  // The pilot tuned the step sizes: acceptance near the target, and the steps are capped.
  for (double a : r.acceptance) EXPECT_GT(a, 0.3);
  for (double h : r.step_sizes) EXPECT_LE(h, o.max_step_size);
  EXPECT_EQ(r.y.sizes(), (std::vector<int64_t>{20000, 3, 2}));
}

TEST(Annealing, MalaAisIsUnbiasedForATwoModeMixture) {
  auto target = std::make_shared<GaussianMixture2D>();
  AnchoredEnergy energy(target, 0);
  // One broad component between the modes: the annealing has to find both.
  auto prior = prior_on(GaussianMixture2D::prior_centre(), 0.5, 0.6);
  AnnealOptions o;
  o.method = "mala";
  o.steps = 10;
  o.moves = 2;
  o.step_size = 0.1;
  o.pilot = 200;
  o.chunk = 10000;
  auto r = anneal(o, prior, energy, nullptr, 20000, 2);
  auto c = mean_of_ratio(r.log_w, std::log(GaussianMixture2D::z()));
  EXPECT_LT(c.se, 0.05);
  EXPECT_NEAR(c.mean, 1.0, 3 * c.se) << "standard error " << c.se;
  // The weighted samples put 3/4 of the mass in the second mode.
  auto w = torch::softmax(r.log_w, 0);
  auto in_second = (r.y.select(1, 0).select(1, 0) < 0.5).to(torch::kFloat64);
  EXPECT_NEAR((w * in_second).sum().item<double>(), 0.75, 0.03);
}

TEST(Annealing, SmcWithMalaHasAnUnbiasedZHat) {
  auto target = std::make_shared<GaussianMixture2D>();
  AnchoredEnergy energy(target, 0);
  auto prior = prior_on(GaussianMixture2D::prior_centre(), 0.5, 0.6);
  AnnealOptions o;
  o.method = "smc-mala";
  o.steps = 6;
  o.moves = 1;
  o.step_size = 0.1;
  o.pilot = 200;
  o.resample_threshold = 0.8;
  const int64_t population = 50, runs = 300;
  o.chunk = population;
  auto r = anneal(o, prior, energy, nullptr, population * runs, 3);
  EXPECT_GT(r.resampling_events, runs);  // resampling happened, more than once per run
  auto z = torch::exp(per_run_log_z(r.log_w, population)) / GaussianMixture2D::z();
  const double mean = z.mean().item<double>(), se = z.std().item<double>() / std::sqrt(double(runs));
  EXPECT_LT(se, 0.05);
  EXPECT_NEAR(mean, 1.0, 3 * se) << "standard error " << se;
  // The pooled log_w estimate is the mean of the runs' Z_hat.
  EXPECT_NEAR(std::exp(r.log_z) / GaussianMixture2D::z(), mean, 1e-9);
}

struct JulepSetup {
  std::shared_ptr<AnisotropicGaussian> target;
  std::shared_ptr<AnchoredEnergy> energy;
  JulepSampler sampler{nullptr};
};

// A Julep kernel with all terms on and a random (untrained) network, as in test_julep.cpp.
JulepSetup julep_setup(bool network_terms) {
  torch::manual_seed(11);
  auto means = torch::tensor({{2.0, 0.0}, {0.0, 2.0}, {-1.5, -1.5}}, f64);
  JulepSetup s;
  s.target = std::make_shared<AnisotropicGaussian>(means, std::vector<double>{2.0, 5.0});
  s.energy = std::make_shared<AnchoredEnergy>(s.target, 0);
  // A prior broader than the target: light-tailed weights.
  auto prior = prior_on(means.unsqueeze(0), 2.0, 0.5);
  EgnnOptions eo;
  eo.hidden = 16;
  eo.layers = 2;
  Egnn net(eo, s.target->particle_types(), 0, 2);
  net->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters())
      if (p.key() != "h_out.weight") p.value().add_(0.05 * torch::randn_like(p.value()));
  }
  JulepOptions jo;
  jo.steps = 4;
  jo.eps = 0.05;
  jo.use_a = jo.use_b = jo.use_util = network_terms;
  s.sampler = JulepSampler(prior, s.energy, net, jo);
  return s;
}

TEST(Annealing, SmcWithJulepIncrementsHasAnUnbiasedZHat) {
  auto s = julep_setup(/*network_terms=*/true);
  AnnealOptions o;
  o.method = "smc-julep";
  o.resample_threshold = 0.9;
  const int64_t population = 100, runs = 100;
  o.chunk = population;
  auto r = anneal(o, s.sampler->prior(), *s.energy, s.sampler, population * runs, 4);
  EXPECT_GT(r.resampling_events, 0);
  EXPECT_EQ(r.steps, 4);
  auto z = torch::exp(per_run_log_z(r.log_w, population) - s.target->log_z());
  const double mean = z.mean().item<double>(), se = z.std().item<double>() / std::sqrt(double(runs));
  EXPECT_LT(se, 0.08);
  EXPECT_NEAR(mean, 1.0, 3 * se) << "standard error " << se;
}

TEST(Annealing, JulepAisThroughAnnealIsSampleJulepAndSmcWithoutResamplingMatchesIt) {
  auto s = julep_setup(/*network_terms=*/true);
  AnnealOptions o;
  o.method = "julep";
  o.chunk = 40;
  auto ais = anneal(o, s.sampler->prior(), *s.energy, s.sampler, 100, 9);
  torch::manual_seed(9);
  auto reference = sample_julep(s.sampler, 100, 40, 9);
  EXPECT_TRUE(torch::equal(ais.log_w, reference.log_w));
  EXPECT_TRUE(torch::equal(ais.y, reference.y));
  // SMC that never resamples: its intermediate potentials telescope to the same path weight.
  o.method = "smc-julep";
  o.resample_threshold = 0.0;
  auto smc = anneal(o, s.sampler->prior(), *s.energy, s.sampler, 100, 9);
  EXPECT_EQ(smc.resampling_events, 0);
  EXPECT_LT((smc.log_w - reference.log_w).abs().max().item<double>(), 1e-9);
  EXPECT_TRUE(torch::allclose(smc.y, reference.y, 0, 0));
  // "ula" insists on the untrained kernel.
  o.method = "ula";
  EXPECT_THROW(anneal(o, s.sampler->prior(), *s.energy, s.sampler, 10, 1), Error);
  o.method = "mala";
  o.moves = 0;
  EXPECT_THROW(anneal(o, s.sampler->prior(), *s.energy, nullptr, 10, 1), Error);
}

}  // namespace
}  // namespace mintjulep
