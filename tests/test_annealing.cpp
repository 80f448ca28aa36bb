// Exact annealing (DESIGN.md §4b): MALA-AIS weights with E[w] = Z, SMC's Z_hat unbiased with
// MALA and with Julep increments, systematic resampling, and agreement with the Julep AIS path.
#include <mintjulep/annealing.hpp>
#include <mintjulep/egnn.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/julep_training.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/mint_training.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

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

// The anisotropic Gaussian at t = 1 and an energy that cannot be evaluated (NaN) before: only
// the geometric path, which never evaluates V(., t < 1), can anneal to it.
class GaussianOnlyAtTheEnd : public AnisotropicGaussian {
 public:
  using AnisotropicGaussian::AnisotropicGaussian;
  torch::Tensor energy(const torch::Tensor& x, double t) const override {
    auto u = AnisotropicGaussian::energy(x, 1.0);
    return t < 1 ? u + std::numeric_limits<double>::quiet_NaN() : u;
  }
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

// The anisotropic-Gaussian tests' set-up: three particles in 2D with lambda = (2, 8) around
// these means, a prior centred on them, and 8 MALA temperatures tuned on a pilot.
torch::Tensor anisotropic_means() { return torch::tensor({{2.0, 0.0}, {0.0, 2.0}, {-1.5, -1.5}}, f64); }

struct AnisotropicCase {
  std::shared_ptr<AnisotropicGaussian> target;
  AnchoredEnergy energy;
  MintPrior prior;
  AnnealOptions options;
};

template <typename Target = AnisotropicGaussian>
AnisotropicCase anisotropic_case() {
  auto means = anisotropic_means();
  auto target = std::make_shared<Target>(means, std::vector<double>{2.0, 8.0});
  AnnealOptions o;
  o.method = "mala";
  o.steps = 8;
  o.step_size = 0.05;
  o.pilot = 200;
  o.chunk = 5000;
  return {target, AnchoredEnergy(target, 0), prior_on(means.unsqueeze(0), 3.0, 0.4), o};
}

// E[w / Z] = 1 within 3 standard errors, with a standard error small enough to mean something.
MeanCheck expect_unbiased(const torch::Tensor& log_w, double log_z, const std::string& what = "") {
  auto c = mean_of_ratio(log_w, log_z);
  EXPECT_LT(c.se, 0.05) << what;
  EXPECT_NEAR(c.mean, 1.0, 3 * c.se) << what << " standard error " << c.se;
  return c;
}

TEST(Annealing, MalaAisIsUnbiasedForAnAnisotropicGaussian) {
  auto s = anisotropic_case();
  const auto& o = s.options;
  auto r = anneal(o, s.prior, s.energy, nullptr, 20000, 1);
  auto c = expect_unbiased(r.log_w, s.target->log_z());
  EXPECT_GT(std::abs(c.mean * std::exp(0.2) - 1.0), 3 * c.se);  // a 20% error would show
  EXPECT_EQ(r.num_non_finite, 0);
  EXPECT_EQ(r.resampling_events, 0);
  ASSERT_EQ(r.acceptance.size(), 8u);
  // The pilot tuned the step sizes: acceptance near the target, and the steps are capped.
  for (double a : r.acceptance) EXPECT_GT(a, 0.3);
  for (double h : r.step_sizes) EXPECT_LE(h, o.max_step_size);
  EXPECT_EQ(r.y.sizes(), (std::vector<int64_t>{20000, 3, 2}));
}

// Reverse AIS from exact draws of the target: E[w] = 1 / Z, on the same path and prior.
TEST(Annealing, ReverseMalaAisFromExactSamplesIsUnbiasedForOneOverZ) {
  auto s = anisotropic_case();
  torch::manual_seed(7);
  const int64_t count = 20000;
  auto lambda = torch::tensor({2.0, 8.0}, f64);
  auto exact = anisotropic_means().unsqueeze(0) + torch::randn({count, 3, 2}, f64) / lambda.sqrt();
  // The reverse weights end on q / pi_1: a prior narrower than the target keeps their variance
  // finite (the forward test's broad prior would not).
  auto narrow = prior_on(anisotropic_means().unsqueeze(0), 12.0, 0.25);
  auto r = reverse_anneal(s.options, narrow, s.energy, exact, 3);
  auto c = expect_unbiased(r.log_w, -s.target->log_z(), "reverse weights");
  EXPECT_GT(std::abs(c.mean * std::exp(0.2) - 1.0), 3 * c.se);  // a 20% error would show
  EXPECT_NEAR(r.log_z, s.target->log_z(), 4 * c.se);             // -log mean w estimates log Z
  EXPECT_EQ(r.num_non_finite, 0);
  ASSERT_EQ(r.acceptance.size(), 8u);
  for (size_t j = 0; j + 1 < r.acceptance.size(); ++j) EXPECT_GT(r.acceptance[j], 0.3);
  EXPECT_EQ(r.acceptance.back(), 0.0);  // no moves at t_T = 1: the chains start there exactly
  // Draws from somewhere else are not exact, and the estimate says so (it is biased).
  auto shifted = reverse_anneal(s.options, narrow, s.energy, exact + 0.5, 3);
  EXPECT_GT(std::abs(mean_of_ratio(shifted.log_w, -s.target->log_z()).mean - 1.0), 0.2);
  // Wrong shapes and methods are errors.
  EXPECT_THROW(reverse_anneal(s.options, narrow, s.energy, exact.narrow(1, 0, 2), 3), Error);
  auto smc = s.options;
  smc.method = "smc-mala";
  EXPECT_THROW(reverse_anneal(smc, narrow, s.energy, exact, 3), Error);
}

TEST(Annealing, HmcAisIsUnbiasedForAnAnisotropicGaussian) {
  auto s = anisotropic_case();
  auto& o = s.options;
  o.leapfrog = 4;
  o.step_size = 0.02;
  o.target_acceptance = 0.65;
  auto r = anneal(o, s.prior, s.energy, nullptr, 20000, 1);
  auto c = expect_unbiased(r.log_w, s.target->log_z());
  EXPECT_GT(std::abs(c.mean * std::exp(0.2) - 1.0), 3 * c.se);  // a 20% error would show
  for (double a : r.acceptance) EXPECT_GT(a, 0.3);
  EXPECT_THROW(([&] {
                 AnnealOptions bad = o;
                 bad.leapfrog = 0;
                 check_anneal_options(bad);
               }()),
               Error);
}

TEST(Annealing, MalaAisOnTheGeometricPathUsesOnlyTheTargetEnergyAndIsUnbiased) {
  auto s = anisotropic_case<GaussianOnlyAtTheEnd>();
  auto& o = s.options;
  o.geometric_path = true;
  auto r = anneal(o, s.prior, s.energy, nullptr, 20000, 7);
  expect_unbiased(r.log_w, s.target->log_z());
  // The soft path evaluates V(., t < 1): every chain is dropped as not evaluable.
  o.geometric_path = false;
  auto soft = anneal(o, s.prior, s.energy, nullptr, 2000, 7);
  EXPECT_EQ(soft.num_nan, 2000);
}

TEST(Annealing, MalaAisOnANonUniformScheduleIsUnbiased) {
  auto s = anisotropic_case();
  for (double power : {0.5, 3.0}) {
    auto o = s.options;
    o.schedule_power = power;
    auto r = anneal(o, s.prior, s.energy, nullptr, 20000, 5);
    expect_unbiased(r.log_w, s.target->log_z(), "power " + std::to_string(power) + ":");
  }
  AnnealOptions bad;
  bad.schedule_power = 0;
  EXPECT_THROW(check_anneal_options(bad), Error);
}

// One broad component between the two modes of GaussianMixture2D: the annealing has to find both.
MintPrior mixture_prior() { return prior_on(GaussianMixture2D::prior_centre(), 0.5, 0.6); }

AnnealOptions mixture_options(const std::string& method, int64_t steps, int64_t chunk) {
  AnnealOptions o;
  o.method = method;
  o.steps = steps;
  o.step_size = 0.1;
  o.pilot = 200;
  o.chunk = chunk;
  return o;
}

// SMC runs of `population` chains each (log_w as anneal() returns it): their Z_hat average to
// GaussianMixture2D's Z within 3 standard errors.
void expect_mixture_z_hat_unbiased(const torch::Tensor& log_w, int64_t population) {
  const int64_t runs = log_w.size(0) / population;
  auto z = torch::exp(per_run_log_z(log_w, population)) / GaussianMixture2D::z();
  const double mean = z.mean().item<double>(), se = z.std().item<double>() / std::sqrt(double(runs));
  EXPECT_LT(se, 0.05);
  EXPECT_NEAR(mean, 1.0, 3 * se) << "standard error " << se;
  // The pooled log_w estimate is the mean of the runs' Z_hat.
  EXPECT_NEAR(std::exp(torch::logsumexp(log_w, 0).item<double>() - std::log(double(log_w.size(0)))) /
                  GaussianMixture2D::z(),
              mean, 1e-9);
}

TEST(Annealing, MalaAisIsUnbiasedForATwoModeMixture) {
  auto target = std::make_shared<GaussianMixture2D>();
  AnchoredEnergy energy(target, 0);
  auto prior = mixture_prior();
  auto o = mixture_options("mala", 10, 10000);
  o.moves = 2;
  auto r = anneal(o, prior, energy, nullptr, 20000, 2);
  auto c = mean_of_ratio(r.log_w, std::log(GaussianMixture2D::z()));
  EXPECT_LT(c.se, 0.05);
  EXPECT_NEAR(c.mean, 1.0, 3 * c.se) << "standard error " << c.se;
  // The weighted samples put 3/4 of the mass in the second mode.
  auto w = torch::softmax(r.log_w, 0);
  auto in_second = (r.y.select(1, 0).select(1, 0) < 0.5).to(torch::kFloat64);
  EXPECT_NEAR((w * in_second).sum().item<double>(), 0.75, 0.03);
}

TEST(Annealing, IndependenceMovesKeepAisUnbiasedAndRaiseThePathEss) {
  // The broad prior between the modes of the two-mode mixture: independence moves (proposals
  // from the prior itself) keep every temperature's distribution, so E[w] = Z still holds, and
  // they move chains between the modes, which the local MALA moves alone do rarely.
  auto target = std::make_shared<GaussianMixture2D>();
  AnchoredEnergy energy(target, 0);
  auto prior = mixture_prior();
  auto o = mixture_options("mala", 10, 10000);
  auto plain = anneal(o, prior, energy, nullptr, 20000, 4);
  o.independence = 2;
  auto r = anneal(o, prior, energy, nullptr, 20000, 4);
  auto c = mean_of_ratio(r.log_w, std::log(GaussianMixture2D::z()));
  EXPECT_LT(c.se, 0.05);
  EXPECT_NEAR(c.mean, 1.0, 3 * c.se) << "standard error " << c.se;
  EXPECT_GT(r.independence_acceptance, 0.05);
  EXPECT_LT(r.independence_acceptance, 1.0);
  EXPECT_EQ(plain.independence_acceptance, 0.0);
  EXPECT_GT(r.ess, plain.ess);
  // SMC with the same moves: Z_hat of independent populations averages to Z.
  auto smc = mixture_options("smc-mala", 6, 50);
  smc.independence = 1;
  smc.resample_threshold = 0.8;
  expect_mixture_z_hat_unbiased(anneal(smc, prior, energy, nullptr, 50 * 200, 6).log_w, 50);
  AnnealOptions bad;
  bad.independence = -1;
  EXPECT_THROW(check_anneal_options(bad), Error);
}

TEST(Annealing, SmcWithMalaHasAnUnbiasedZHat) {
  auto target = std::make_shared<GaussianMixture2D>();
  AnchoredEnergy energy(target, 0);
  auto prior = mixture_prior();
  const int64_t population = 50, runs = 300;
  auto o = mixture_options("smc-mala", 6, population);
  o.resample_threshold = 0.8;
  auto r = anneal(o, prior, energy, nullptr, population * runs, 3);
  EXPECT_GT(r.resampling_events, runs);  // resampling happened, more than once per run
  expect_mixture_z_hat_unbiased(r.log_w, population);
  EXPECT_NEAR(std::exp(r.log_z - torch::logsumexp(r.log_w, 0).item<double>() + std::log(double(population * runs))),
              1.0, 1e-9);  // r.log_z is that pooled estimate
}

// Chunks kept by an interrupted run and taken by its rerun: the result is the uninterrupted
// run's, bit for bit, MALA's step sizes carried from chunk to chunk included.
ChunkCache memory_cache(std::map<int64_t, ChunkRecord>& kept) {
  ChunkCache cache;
  cache.load = [&kept](int64_t index, ChunkRecord& record) {
    auto found = kept.find(index);
    if (found == kept.end()) return false;
    record = found->second;
    return true;
  };
  cache.save = [&kept](int64_t index, const ChunkRecord& record) { kept[index] = record; };
  return cache;
}

TEST(Annealing, ChunksKeptByAnInterruptedRunGiveTheUninterruptedResult) {
  auto target = std::make_shared<GaussianMixture2D>();
  AnchoredEnergy energy(target, 0);
  auto prior = mixture_prior();
  auto o = mixture_options("smc-mala", 5, 40);
  o.pilot = 50;
  o.resample_threshold = 0.8;
  o.independence = 1;
  const int64_t count = 150;  // 4 chunks, the last one short
  auto whole = anneal(o, prior, energy, nullptr, count, 7);
  std::map<int64_t, ChunkRecord> kept;
  struct Interrupt {};
  EXPECT_THROW(anneal(o, prior, energy, nullptr, count, 7,
                      [](int64_t done, int64_t) {
                        if (done == 80) throw Interrupt{};
                      },
                      memory_cache(kept)),
               Interrupt);
  ASSERT_EQ(kept.size(), 2u);
  torch::manual_seed(123);  // the rerun must not depend on the generator's state
  auto resumed = anneal(o, prior, energy, nullptr, count, 7, {}, memory_cache(kept));
  EXPECT_EQ(kept.size(), 4u);
  EXPECT_TRUE(torch::equal(whole.y, resumed.y));
  EXPECT_TRUE(torch::equal(whole.log_w, resumed.log_w));
  EXPECT_EQ(whole.resampling_events, resumed.resampling_events);
  EXPECT_EQ(whole.acceptance, resumed.acceptance);
  EXPECT_EQ(whole.step_sizes, resumed.step_sizes);
  EXPECT_EQ(whole.independence_acceptance, resumed.independence_acceptance);
  EXPECT_GT(whole.independence_acceptance, 0.0);
  EXPECT_EQ(whole.log_z, resumed.log_z);
}

struct JulepSetup {
  std::shared_ptr<AnisotropicGaussian> target;
  std::shared_ptr<AnchoredEnergy> energy;
  JulepSampler sampler{nullptr};
};

// A Julep kernel with all terms on and a random (untrained) network, as in test_julep.cpp.
JulepSetup julep_setup(bool network_terms) {
  torch::manual_seed(11);
  auto means = anisotropic_means();
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
  EXPECT_LT(se, 0.15);  // 0.06 to 0.12 over seeds 1 to 12: a bound against a degenerate estimator
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
  // Chunks kept by an interrupted sample_julep and taken by its rerun.
  std::map<int64_t, ChunkRecord> kept;
  struct Interrupt {};
  EXPECT_THROW(sample_julep(
                   s.sampler, 100, 40, 9, [](int64_t done) { if (done == 40) throw Interrupt{}; }, memory_cache(kept)),
               Interrupt);
  ASSERT_EQ(kept.size(), 1u);
  auto resumed = sample_julep(s.sampler, 100, 40, 9, {}, memory_cache(kept));
  EXPECT_TRUE(torch::equal(resumed.log_w, reference.log_w));
  EXPECT_TRUE(torch::equal(resumed.y, reference.y));
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


// Numerical faults injected into a well-behaved target: inside a region of the second particle's
// first coordinate (y_00 > threshold) and for path times in [t_lo, t_hi], the energy becomes
// `fault` (NaN: not evaluable; -inf: log w overflows to +inf).
class FaultyEnergy : public Energy {
 public:
  FaultyEnergy(std::shared_ptr<const Energy> base, double threshold, double t_lo, double t_hi, double fault)
      : base_(std::move(base)), threshold_(threshold), t_lo_(t_lo), t_hi_(t_hi), fault_(fault) {}
  std::string name() const override { return "faulty"; }
  int64_t num_particles() const override { return base_->num_particles(); }
  int64_t dim() const override { return base_->dim(); }
  double length_scale() const override { return base_->length_scale(); }
  torch::Tensor energy(const torch::Tensor& x, double t) const override {
    auto v = base_->energy(x, t);
    if (t < t_lo_ || t > t_hi_) return v;
    auto in_region = (x.select(1, 1).select(1, 0) - x.select(1, 0).select(1, 0)) > threshold_;
    return torch::where(in_region, torch::full_like(v, fault_), v);
  }

 private:
  std::shared_ptr<const Energy> base_;
  double threshold_, t_lo_, t_hi_, fault_;
};

std::shared_ptr<AnisotropicGaussian> fault_test_target() {
  auto means = anisotropic_means();
  return std::make_shared<AnisotropicGaussian>(means, std::vector<double>{2.0, 8.0});
}

AnnealOptions fault_test_options(const std::string& method) {
  AnnealOptions o;
  o.method = method;
  o.steps = 10;
  o.step_size = 0.05;
  o.pilot = 0;
  o.chunk = 2000;
  o.resample_threshold = 0.99;  // SMC resamples at almost every step
  return o;
}

TEST(NumericalFaults, SummaryCountsEachCauseAndDescribesIt) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  auto s = summarize_log_weights(torch::tensor({0.0, nan, inf, -inf, -inf, std::log(3.0)}, f64));
  EXPECT_EQ(s.num_samples, 6);
  EXPECT_EQ(s.num_finite, 2);
  EXPECT_EQ(s.num_nan, 1);
  EXPECT_EQ(s.num_overflow, 1);
  EXPECT_EQ(s.num_zero, 2);
  EXPECT_NEAR(s.log_z, std::log(4.0 / 6.0), 1e-15);  // w = (1, 0, 0, 0, 0, 3)
  EXPECT_EQ(describe_dropped_weights(s),
            "4 of 6 weights dropped (weight 0): 1 NaN (energy or density not evaluable), 1 +inf (log w "
            "overflow), 2 -inf (infinite energy)");
  EXPECT_EQ(describe_dropped_weights(summarize_log_weights(torch::zeros({5}, f64))), "all 5 weights finite");
  // SMC counted 3 NaN during the run, none of them left in the final weights.
  EXPECT_EQ(describe_dropped_weights(summarize_log_weights(torch::zeros({5}, f64)), 3, 0),
            "all 5 weights finite; at resampling steps 3 NaN and 0 +inf log w were set to 0");
}

TEST(NumericalFaults, NanEnergyMidTrajectoryDropsOnlyThoseChains) {
  auto target = fault_test_target();
  auto faulty = std::make_shared<FaultyEnergy>(target, 2.3, 0.45, 0.55, std::nan(""));
  auto prior = prior_on(torch::tensor({{{2.0, 0.0}, {0.0, 2.0}, {-1.5, -1.5}}}, f64), 3.0, 0.4);
  for (const std::string method : {"mala", "smc-mala"}) {
    SCOPED_TRACE(method);
    auto r = anneal(fault_test_options(method), prior, AnchoredEnergy(faulty, 0), nullptr, 2000, 3);
    // Chains inside the region at t = 0.5 (about a fifth of them) lose their weight, counted.
    EXPECT_GT(r.num_nan, 40);
    EXPECT_LT(r.num_nan, 1000);
    EXPECT_FALSE(torch::isnan(r.log_w).any().item<bool>() && method == "smc-mala");
    if (method == "mala") {
      EXPECT_EQ(r.num_nan, torch::isnan(r.log_w).sum().item<int64_t>());
      EXPECT_EQ(r.num_non_finite, r.num_nan);
    }
    EXPECT_TRUE(std::isfinite(r.log_z));
    EXPECT_TRUE(std::isfinite(r.ess));
    EXPECT_GT(r.ess, 0.0);
    EXPECT_EQ(r.num_overflow, 0);
    // The fault removes mass, never adds it: log Z_hat is not above the fault-free target's by
    // more than noise (the fault-free run with the same seed).
    auto clean = anneal(fault_test_options(method), prior, AnchoredEnergy(target, 0), nullptr, 2000, 3);
    EXPECT_EQ(clean.num_nan, 0);
    EXPECT_LT(r.log_z, clean.log_z + 0.05);
  }
}

TEST(NumericalFaults, OverflowInLogWeightIsCountedAndWeighsNothing) {
  auto target = fault_test_target();
  // U = -inf at the end of the path: log w = +inf for the chains there.
  auto faulty = std::make_shared<FaultyEnergy>(target, 2.3, 1.0, 1.0, -std::numeric_limits<double>::infinity());
  auto prior = prior_on(torch::tensor({{{2.0, 0.0}, {0.0, 2.0}, {-1.5, -1.5}}}, f64), 3.0, 0.4);
  for (const std::string method : {"mala", "smc-mala"}) {
    SCOPED_TRACE(method);
    auto r = anneal(fault_test_options(method), prior, AnchoredEnergy(faulty, 0), nullptr, 2000, 5);
    EXPECT_GT(r.num_overflow, 40);
    EXPECT_EQ(r.num_nan, 0);
    EXPECT_TRUE(std::isfinite(r.log_z));
    EXPECT_TRUE(std::isfinite(r.ess));
    EXPECT_GT(r.ess, 0.0);
    EXPECT_EQ(r.num_non_finite, torch::isfinite(r.log_w).logical_not().sum().item<int64_t>());
  }
  // Prior draws: log w = -U - log q = +inf there, dropped the same way.
  torch::manual_seed(2);
  auto log_w = prior_log_weights(prior, AnchoredEnergy(faulty, 0), 4000, 1000);
  auto s = summarize_log_weights(log_w);
  EXPECT_GT(s.num_overflow, 80);
  EXPECT_EQ(s.num_overflow + s.num_finite, 4000);
  EXPECT_TRUE(std::isfinite(s.log_z));
}

TEST(NumericalFaults, OverlappingParticlesHaveInfiniteEnergyAndZeroWeight) {
  for (const std::string name : {"lj13", "lj13-half", "dw4"}) {
    SCOPED_TRACE(name);
    auto energy = make_system(name);
    torch::manual_seed(0);
    auto x = 2.0 * torch::randn({2, energy->num_particles(), energy->dim()}, f64);
    x.select(0, 1).select(0, 1).copy_(x.select(0, 1).select(0, 0));  // sample 1: particles 0 and 1 coincide
    auto u = energy->energy(x, 1.0);
    EXPECT_TRUE(std::isfinite(u[0].item<double>()));
    if (name == "dw4") {
      EXPECT_TRUE(std::isfinite(u[1].item<double>()));  // a soft pair potential
    } else {
      EXPECT_EQ(u[1].item<double>(), std::numeric_limits<double>::infinity());
      // -inf log w, a true zero weight, not a NaN; the soft-core path stays finite before t = 1.
      auto s = summarize_log_weights(-u);
      EXPECT_EQ(s.num_zero, 1);
      EXPECT_EQ(s.num_nan, 0);
      EXPECT_TRUE(std::isfinite(energy->energy(x, 0.5)[1].item<double>()));
    }
  }
}

TEST(NumericalFaults, ACollapsedPriorComponentGivesNoNanInTheEstimates) {
  auto target = fault_test_target();
  auto centres = torch::tensor({{{2.0, 0.0}, {0.0, 2.0}, {-1.5, -1.5}}, {{2.1, 0.1}, {0.1, 2.1}, {-1.4, -1.4}}}, f64);
  auto prior = prior_on(centres, 3.0, 0.4);
  {
    torch::NoGradGuard no_grad;
    prior->log_sigma[1].fill_(-300.0);  // the second component's radial widths collapse to 1e-130
    prior->log_kappa[1].fill_(300.0);   // and its directions to a point
  }
  AnchoredEnergy energy(target, 0);
  torch::manual_seed(4);
  auto log_w = prior_log_weights(prior, energy, 4000, 1000);
  auto s = summarize_log_weights(log_w);
  EXPECT_EQ(s.num_nan, 0);
  EXPECT_EQ(s.num_overflow, 0);
  EXPECT_TRUE(std::isfinite(s.log_z));
  EXPECT_GT(s.num_finite, 1000);  // the healthy component's draws keep their weights
  for (const std::string method : {"mala", "smc-mala"}) {
    SCOPED_TRACE(method);
    auto r = anneal(fault_test_options(method), prior, energy, nullptr, 2000, 6);
    EXPECT_EQ(r.num_nan, 0);
    EXPECT_EQ(r.num_overflow, 0);
    EXPECT_TRUE(std::isfinite(r.log_z));
    EXPECT_GT(r.ess, 0.0);
  }
}

}  // namespace
}  // namespace mintjulep
