// The Julep kernel: the low-rank matrix exponential, exact path weights (E[w] = Z), the AIS
// special case, equivariance, and the chunked log-variance gradient.
#include <mintjulep/egnn.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/julep_training.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "test_helpers.hpp"

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;
auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

struct FiniteDifferenceCheck {
  int checked = 0;
  double largest = 0;  // largest |finite difference| seen
};

// Compares grads with central differences of loss() (h = 1e-6) at the first and last entry of
// every parameter tensor (and the middle one with `with_middle`).
template <typename Loss>
FiniteDifferenceCheck expect_gradient_matches_finite_differences(std::vector<torch::Tensor>& params,
                                                                 const std::vector<torch::Tensor>& grads,
                                                                 Loss&& loss, bool with_middle) {
  torch::NoGradGuard no_grad;
  FiniteDifferenceCheck result;
  for (size_t i = 0; i < params.size(); ++i) {
    auto flat = params[i].view({-1});
    std::vector<int64_t> entries{0, flat.numel() - 1};
    if (with_middle) entries.insert(entries.begin() + 1, flat.numel() / 2);
    for (int64_t k : entries) {
      const double old = flat[k].item<double>(), h = 1e-6;
      flat[k] = old + h;
      const double plus = loss().template item<double>();
      flat[k] = old - h;
      const double minus = loss().template item<double>();
      flat[k] = old;
      const double fd = (plus - minus) / (2 * h), g = grads[i].view({-1})[k].template item<double>();
      EXPECT_NEAR(g, fd, 1e-5 * std::max(1.0, std::abs(fd))) << "parameter " << i << " entry " << k;
      result.largest = std::max(result.largest, std::abs(fd));
      ++result.checked;
    }
  }
  return result;
}

TEST(LowRankExpm, EqualsTheFullMatrixExponential) {
  torch::manual_seed(1);
  for (int64_t rank : {1, 2, 4}) {
    auto h = torch::randn({3, 7, rank}, f64);
    auto y = torch::randn({3, 7, 3}, f64);
    for (double s : {0.3, -0.05, 1.0}) {
      auto full = torch::matmul(torch::linalg_matrix_exp(s * torch::matmul(h, h.transpose(1, 2))), y);
      auto low = low_rank_expm_apply(h, y, s);
      EXPECT_LT((full - low).abs().max().item<double>(), 1e-10 * full.abs().max().item<double>())
          << "rank " << rank << " s " << s;
    }
  }
}

// U = 0.5 sum_{i != anchor} sum_k lambda_k (y_ik - m_ik)^2 with y = x - x_anchor: a Gaussian
// in y with known Z = prod_k (2 pi / lambda_k)^(M/2), centred away from the anchor (where the
// log-normal radii of the prior would leave the weights without a finite variance).
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
  const torch::Tensor& means() const { return means_; }

 private:
  torch::Tensor means_;
  std::vector<double> lambda_;
};

struct Setup {
  std::shared_ptr<AnchoredEnergy> energy;
  MintPrior prior{nullptr};
  JulepSampler sampler{nullptr};
};

// A sampler whose network parameters are all random and non-zero (b, Util and A all active).
Setup make_setup(std::shared_ptr<Energy> system, JulepOptions options, uint64_t seed,
                 double perturb = 0.1, double prior_radius = 1.0) {
  torch::manual_seed(seed);
  Setup s;
  s.energy = std::make_shared<AnchoredEnergy>(system, 0);
  MintPriorOptions po;
  po.num_free = system->num_particles() - 1;
  po.dim = system->dim();
  po.components = 2;
  po.kappa = 2.0;
  po.sigma = 0.4;
  po.radius = prior_radius;
  s.prior = MintPrior(po);
  EgnnOptions eo;
  eo.hidden = 16;
  eo.layers = 2;
  eo.rank = 2;
  eo.length_scale = system->length_scale();
  Egnn net(eo, system->particle_types(), 0, system->dim());
  net->to(torch::kFloat64);
  {
    // h's output layer keeps its small random start: exp(+Delta H H^T) expands, and a large
    // H makes the forward kernel explode.
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters())
      if (p.key() != "h_out.weight") p.value().add_(perturb * torch::randn_like(p.value()));
  }
  s.sampler = JulepSampler(s.prior, s.energy, net, options);
  return s;
}

// The small DW-4 sampler the training tests share: T = 5, eps = 0.02, the network at its
// initialisation (b = Util = 0, small random H), so training starts from AIS.
Setup small_dw4_setup(uint64_t seed) {
  JulepOptions o;
  o.steps = 5;
  o.eps = 0.02;
  return make_setup(make_system("dw4"), o, seed, 0.0, 4.0);
}

std::vector<torch::Tensor> cloned(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> out;
  for (const auto& p : parameters) out.push_back(p.detach().clone());
  return out;
}

TEST(JulepWeights, AreUnbiasedForAGaussianTargetWithKnownZ) {
  // E[w] = Z must hold for any parameters: b, Util and A all active with random weights.
  const std::vector<std::pair<torch::Tensor, std::vector<double>>> cases = {
      {torch::tensor({{2.0, 0.0}, {0.0, 2.0}, {-1.5, -1.5}}, f64), {2.0, 5.0}},
      {torch::tensor({{2.0, 0.0, 0.0}, {0.0, 2.0, 0.5}, {-1.5, -1.0, 1.0}}, f64), {2.0, 5.0, 3.0}}};
  for (const auto& [means, lambda] : cases) {
    auto target = std::make_shared<AnisotropicGaussian>(means, lambda);
    JulepOptions o;
    o.steps = 4;
    o.eps = 0.05;
    auto s = make_setup(target, o, 2, 0.1, 2.0);
    {
      // A one-component fixed-orientation prior placed on the target: weights with light tails.
      torch::NoGradGuard no_grad;
      MintPriorOptions po = s.prior->options();
      po.invariant = false;
      po.components = 1;
      s.prior = MintPrior(po);
      s.prior->mu.copy_(means.unsqueeze(0));
      s.prior->rho.copy_(means.norm(2, -1).log().unsqueeze(0));
      s.prior->log_kappa.fill_(std::log(4.0));
      s.prior->log_sigma.fill_(std::log(0.4));
      s.sampler = JulepSampler(s.prior, s.energy, s.sampler->network(), o);
      s.sampler->log_eps.copy_(torch::log(torch::tensor({0.03, 0.08, 0.05, 0.1}, f64)));
    }
    torch::manual_seed(3);
    auto batch = sample_julep(s.sampler, 40000, 10000, 4);
    auto w = torch::exp(batch.log_w - target->log_z());
    const double mean = w.mean().item<double>();
    const double se = w.std().item<double>() / std::sqrt(40000.0);
    EXPECT_LT(se, 0.08);  // the check has power
    EXPECT_NEAR(mean, 1.0, 3 * se) << "n = " << lambda.size() << ", standard error " << se;
    // A normaliser off by 30% is detected at this sample size.
    EXPECT_GT(std::abs(mean * std::exp(0.3) - 1.0), 3 * se);
  }
}

TEST(JulepWeights, WithoutNetworkTermsEqualPlainAnnealedImportanceSampling) {
  JulepOptions o;
  o.steps = 6;
  o.eps = 0.02;
  o.use_a = o.use_b = o.use_util = false;
  o.max_step = 0;  // the plain Langevin kernel
  auto s = make_setup(make_system("dw4"), o, 5, 0.1, 4.0);
  std::mt19937_64 rng(1);
  auto times = s.sampler->time_grid(rng);
  torch::manual_seed(6);
  auto batch = s.sampler->simulate(50, times, /*keep_path=*/true);
  // Independent computation: unadjusted Langevin on U_t = -(1 - t) log q + t V(y, t).
  auto grad_u = [&](const torch::Tensor& y, double t) {
    auto yy = y.detach().requires_grad_(true);
    auto u = -(1 - t) * s.prior->path_log_prob(yy) + t * s.energy->value(yy, t);
    return torch::autograd::grad({u.sum()}, {yy})[0];
  };
  auto path = batch.path;
  torch::Tensor log_w = -s.prior->log_prob(path.select(1, 0)).detach();
  const double eps = 0.02;
  for (int64_t j = 1; j <= 6; ++j) {
    const double t0 = times[j - 1], t1 = times[j], dt = t1 - t0;
    auto a = path.select(1, j - 1), b = path.select(1, j);
    auto fwd = b - (a - eps * dt * grad_u(a, t0));
    auto bwd = a - (b - eps * dt * grad_u(b, t1));
    log_w = log_w + (fwd.pow(2).sum({1, 2}) - bwd.pow(2).sum({1, 2})) / (4 * eps * dt);
  }
  log_w = log_w - s.energy->value(path.select(1, 6), 1.0);
  EXPECT_LT((log_w - batch.log_w).abs().max().item<double>(), 1e-9);
  // And the path is that Langevin chain: standardised increments have unit variance.
  std::vector<torch::Tensor> z;
  for (int64_t j = 1; j <= 6; ++j) {
    const double dt = times[j] - times[j - 1];
    auto a = path.select(1, j - 1);
    z.push_back((path.select(1, j) - (a - eps * dt * grad_u(a, times[j - 1]))) / std::sqrt(2 * eps * dt));
  }
  auto all = torch::cat(z).flatten();
  EXPECT_NEAR(all.var().item<double>(), 1.0, 5 * std::sqrt(2.0 / all.numel()));
}

TEST(JulepWeights, AreInvariantAndTrajectoriesEquivariantUnderOrthogonalMaps) {
  for (const char* name : {"dw4", "lj:5:3"}) {
    auto system = make_system(name);
    JulepOptions o;
    o.steps = 5;
    o.eps = 0.01;
    auto s = make_setup(system, o, 7, 0.1, system->length_scale());
    std::mt19937_64 rng(2);
    auto times = s.sampler->time_grid(rng);
    torch::manual_seed(8);
    auto y0 = s.prior->sample(16);
    auto noise = torch::randn({5, 16, system->num_particles() - 1, system->dim()}, f64);
    auto reference = s.sampler->simulate_from(y0, times, false, noise);
    for (bool reflect : {false, true}) {
      auto q = testing::random_orthogonal(system->dim(), reflect, 9);
      auto rotated = s.sampler->simulate_from(y0.matmul(q), times, false, noise.matmul(q));
      EXPECT_LT((rotated.final - reference.final.matmul(q)).abs().max().item<double>(), 1e-9) << name;
      EXPECT_LT((rotated.log_w - reference.log_w).abs().max().item<double>(), 1e-8) << name;
    }
  }
}

TEST(JulepTraining, ChunkedGradientEqualsOneShotGradient) {
  JulepOptions o;
  o.steps = 7;
  o.eps = 0.02;
  auto s = make_setup(make_system("dw4"), o, 10, 0.03, 4.0);
  std::mt19937_64 rng(3);
  auto times = s.sampler->time_grid(rng);
  auto batch = s.sampler->simulate(12, times, true);
  auto c = torch::randn({12}, f64);
  std::vector<torch::Tensor> params = s.sampler->network()->parameters();
  params.push_back(s.sampler->log_eps);
  auto one_shot = torch::autograd::grad({(c * s.sampler->kernel_log_weight(batch.path, times, 1, 8)).sum()}, params);
  for (auto& p : params) p.mutable_grad() = torch::Tensor();
  for (auto [first, last] : {std::pair{1, 3}, std::pair{3, 4}, std::pair{4, 8}})
    (c * s.sampler->kernel_log_weight(batch.path, times, first, last)).sum().backward();
  double max_diff = 0, max_norm = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    max_diff = std::max(max_diff, (params[i].grad() - one_shot[i]).abs().max().item<double>());
    max_norm = std::max(max_norm, one_shot[i].abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-10 * max_norm);
  EXPECT_GT(max_norm, 1e-6);
  // The kernel terms of log w recomputed on the fixed path equal those of the simulation.
  torch::NoGradGuard no_grad;
  auto prior_and_target = -s.prior->log_prob(batch.path.select(1, 0)) -
                          s.energy->value(batch.path.select(1, 7), 1.0);
  auto recomputed = prior_and_target + s.sampler->kernel_log_weight(batch.path, times, 1, 8);
  EXPECT_LT((recomputed - batch.log_w).abs().max().item<double>(), 1e-9);
}

// The training gradient splits the terms of log w over grid points (one network evaluation
// each, points batched through the network, trajectories split by a configuration budget,
// the prior and target parts of the score reused from the simulation): it must equal the
// gradient of the step-wise terms recomputed on the path, for every way of chunking.
TEST(JulepTraining, PointwiseKernelGradientEqualsStepwiseGradient) {
  for (bool use_util : {true, false}) {
    for (bool random_grid : {false, true}) {
      JulepOptions o;
      o.steps = 7;
      o.eps = 0.02;
      o.use_util = use_util;
      o.random_grid = random_grid;
      auto s = make_setup(make_system("lj:4:3"), o, 12, 0.1, 1.1);
      std::mt19937_64 rng(5);
      auto times = s.sampler->time_grid(rng);
      auto batch = s.sampler->simulate(9, times, true);
      ASSERT_EQ(batch.fixed_score.sizes(), batch.path.sizes());
      auto c = torch::randn({9}, f64);
      std::vector<torch::Tensor> params = s.sampler->network()->parameters();
      params.push_back(s.sampler->log_eps);
      auto reference =
          torch::autograd::grad({(c * s.sampler->kernel_log_weight(batch.path, times, 1, 8)).sum()}, params,
                                {}, false, false, /*allow_unused=*/true);
      for (int64_t budget : {1000, 20, 4, 1}) {
        for (auto& p : params) p.mutable_grad() = torch::zeros_like(p);
        for (auto [first, last] : {std::pair{0, 3}, std::pair{3, 4}, std::pair{4, 8}})
          s.sampler->accumulate_kernel_gradient(batch.path, batch.fixed_score, times, c, first, last, budget);
        double max_diff = 0, max_norm = 0;
        for (size_t i = 0; i < params.size(); ++i) {
          auto expected = reference[i].defined() ? reference[i] : torch::zeros_like(params[i]);
          max_diff = std::max(max_diff, (params[i].grad() - expected).abs().max().item<double>());
          max_norm = std::max(max_norm, expected.abs().max().item<double>());
        }
        EXPECT_LT(max_diff, 1e-10 * max_norm) << "util " << use_util << " random grid " << random_grid
                                              << " budget " << budget;
        EXPECT_GT(max_norm, 1e-6);
      }
    }
  }
}

TEST(JulepTraining, ParameterGradientOfOneStepMatchesFiniteDifferences) {
  JulepOptions o;
  o.steps = 4;
  o.eps = 0.02;
  auto s = make_setup(make_system("lj:4:3"), o, 11, 0.1, 1.1);
  std::mt19937_64 rng(4);
  auto times = s.sampler->time_grid(rng);
  auto batch = s.sampler->simulate(6, times, true);
  auto loss = [&] { return s.sampler->kernel_log_weight(batch.path, times, 2, 3).sum(); };
  // A few entries of every parameter tensor, including log_eps and Util's output layer
  // (whose gradient needs the double backward through grad_y Util).
  std::vector<torch::Tensor> params = s.sampler->network()->parameters();
  params.push_back(s.sampler->log_eps);
  auto grads = torch::autograd::grad({loss()}, params);
  auto fd = expect_gradient_matches_finite_differences(params, grads, loss, /*with_middle=*/true);
  EXPECT_GT(fd.checked, 20);
}

TEST(JulepTraining, LogVarianceTrainingRunsAndCountsNothingDropped) {
  auto s = small_dw4_setup(12);
  JulepTrainingOptions t;
  t.iterations = 3;
  t.samples = 16;
  t.chunk_steps = 2;
  t.log_every = 1;
  int calls = 0;
  auto before = s.sampler->log_eps.clone();
  auto result = train_julep(s.sampler, t, [&](const JulepProgress& p) {
    ++calls;
    EXPECT_TRUE(std::isfinite(p.loss));
  });
  EXPECT_EQ(result.iterations, 3);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(result.dropped, 0);
  EXPECT_FALSE(torch::equal(before, s.sampler->log_eps));
}

// Adam's first step moves every parameter by its learning rate (times the sign of its
// gradient), so one step shows which rate each group got.
TEST(JulepTraining, NoiseLevelsTakeTheirOwnLearningRate) {
  auto s = small_dw4_setup(15);
  JulepTrainingOptions t;
  t.iterations = 1;
  t.samples = 16;
  t.warmup_iterations = 0;
  t.clip_norm = 0;
  t.learning_rate = 1e-7;
  t.eps_learning_rate = 0.05;
  auto eps_before = s.sampler->log_eps.clone();
  auto net_before = cloned(s.sampler->network()->parameters());
  ASSERT_EQ(train_julep(s.sampler, t).iterations, 1);
  auto eps_moves = (s.sampler->log_eps.detach() - eps_before).abs();
  EXPECT_NEAR(eps_moves.max().item<double>(), 0.05, 1e-4);
  EXPECT_GT(eps_moves.min().item<double>(), 0.04);
  double net_move = 0;
  auto net_after = s.sampler->network()->parameters();
  for (size_t i = 0; i < net_after.size(); ++i)
    net_move = std::max(net_move, (net_after[i].detach() - net_before[i]).abs().max().item<double>());
  EXPECT_GT(net_move, 0.0);
  EXPECT_LT(net_move, 1.1e-7);
  t.eps_learning_rate = -1;
  EXPECT_THROW(train_julep(s.sampler, t), Error);
}

// A run interrupted after a saved state and resumed must end where the uninterrupted run ends.
TEST(JulepTraining, ResumedTrainingRepeatsTheUninterruptedRun) {
  JulepTrainingOptions t;
  t.iterations = 4;
  t.samples = 16;
  t.chunk_steps = 2;
  t.step_fraction = 0.5;
  t.checkpoint_every = 1;
  t.log_every = 1;
  const auto state = (std::filesystem::temp_directory_path() /
                      ("mintjulep_test_julep_state_" + std::to_string(std::random_device{}()) + ".pt"))
                         .string();
  struct RemoveAtExit {
    std::string path;
    ~RemoveAtExit() { std::filesystem::remove(path); }
  } cleanup{state};

  auto whole = small_dw4_setup(16);
  auto uninterrupted = train_julep(whole.sampler, t);

  auto parts = small_dw4_setup(16);
  t.state_path = state;
  struct Interrupt {};
  EXPECT_THROW(train_julep(parts.sampler, t, [](const JulepProgress& p) {
                 if (p.iteration == 1) throw Interrupt{};
               }),
               Interrupt);
  auto resumed_sampler = small_dw4_setup(99).sampler;  // other weights
  auto resumed = train_julep(resumed_sampler, t);
  EXPECT_EQ(resumed.resumed_from, 2);
  EXPECT_EQ(resumed.iterations, 4);
  EXPECT_EQ(uninterrupted.resumed_from, -1);
  auto a = whole.sampler->parameters();
  auto b = resumed_sampler->parameters();
  ASSERT_EQ(a.size(), b.size());
  auto names = whole.sampler->named_parameters();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::equal(a[i], b[i])) << names[i].key() << " " << (a[i] - b[i]).abs().max().item<double>();

  t.samples = 17;  // a state from other settings is refused with a clear error
  EXPECT_THROW(train_julep(resumed_sampler, t), Error);
  std::filesystem::remove(state);
}

// The reverse-KL objective differentiates log w through the simulation: its values must be
// those of the simulation, and its parameter gradient (including the paths' dependence on the
// parameters through b, A, Util, eps and grad V) must match finite differences.
TEST(JulepTraining, DifferentiableLogWeightEqualsTheSimulationAndItsGradientIsExact) {
  JulepOptions o;
  o.steps = 3;
  o.eps = 0.02;
  auto s = make_setup(make_system("lj:4:3"), o, 13, 0.1, 1.1);
  std::mt19937_64 rng(5);
  auto times = s.sampler->time_grid(rng);
  torch::Tensor y0, noise;
  {
    torch::NoGradGuard no_grad;
    y0 = s.prior->sample(5);
    noise = torch::randn({o.steps, 5, 3, 3}, f64);
  }
  auto simulated = s.sampler->simulate_from(y0, times, false, noise).log_w;
  auto c = torch::randn({5}, f64);
  auto loss = [&] { return (c * s.sampler->differentiable_log_weight(y0, times, noise)).sum(); };
  {
    torch::NoGradGuard no_grad;
    EXPECT_LT((s.sampler->differentiable_log_weight(y0, times, noise) - simulated).abs().max().item<double>(),
              1e-10);
  }
  std::vector<torch::Tensor> params = s.sampler->network()->parameters();
  params.push_back(s.sampler->log_eps);
  auto grads = torch::autograd::grad({loss()}, params);
  auto fd = expect_gradient_matches_finite_differences(params, grads, loss, /*with_middle=*/false);
  EXPECT_GT(fd.checked, 15);
  EXPECT_GT(fd.largest, 1e-3);  // the check is not vacuous
}

TEST(JulepTraining, ReverseKLThenLogVarianceSwitchesObjectiveOnSchedule) {
  auto s = small_dw4_setup(14);
  JulepTrainingOptions t;
  t.objective = "reverse_kl+log_variance";
  t.reverse_kl_fraction = 0.5;
  t.iterations = 4;
  t.samples = 16;
  t.log_every = 1;
  std::vector<std::string> seen;
  auto before = s.sampler->log_eps.clone();
  auto result = train_julep(s.sampler, t, [&](const JulepProgress& p) {
    seen.push_back(p.objective);
    EXPECT_TRUE(std::isfinite(p.loss));
  });
  EXPECT_EQ(result.iterations, 4);
  EXPECT_EQ(seen, (std::vector<std::string>{"reverse_kl", "reverse_kl", "log_variance", "log_variance"}));
  EXPECT_FALSE(torch::equal(before, s.sampler->log_eps));
  t.objective = "forward_kl";
  EXPECT_THROW(train_julep(s.sampler, t), Error);
}


// ---- The PIS-style and DDS-style baselines (DESIGN.md §5) ----------------------------------
// An isotropic Gaussian prior and the additive kernel (A = 0), trained by reverse KL through the
// trajectories (PIS) or by the log-variance loss (DDS): the same sampler and weights as Julep.

struct Baseline {
  std::string name, objective;
  double scale;          // of the isotropic prior
  double learning_rate;  // of the training test
};
void PrintTo(const Baseline& b, std::ostream* os) { *os << b.name; }

Setup make_baseline(std::shared_ptr<Energy> system, const Baseline& b, JulepOptions options, uint64_t seed,
                    double perturb) {
  options.use_a = false;
  torch::manual_seed(seed);
  Setup s;
  s.energy = std::make_shared<AnchoredEnergy>(system, 0);
  MintPriorOptions po;
  po.family = "isotropic";
  po.num_free = system->num_particles() - 1;
  po.dim = system->dim();
  po.components = 1;
  po.scale = b.scale;
  s.prior = MintPrior(po);
  EgnnOptions eo;
  eo.hidden = 16;
  eo.layers = 2;
  eo.length_scale = system->length_scale();
  Egnn net(eo, system->particle_types(), 0, system->dim());
  net->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.add_(perturb * torch::randn_like(p));
  }
  s.sampler = JulepSampler(s.prior, s.energy, net, options);
  return s;
}

class Baselines : public ::testing::TestWithParam<Baseline> {};

TEST_P(Baselines, WeightsAreUnbiasedForAGaussianTargetWithKnownZ) {
  // Random network terms (b and Util active): E[w] = Z must still hold.
  auto target = std::make_shared<AnisotropicGaussian>(torch::tensor({{1.0, 0.0}, {0.0, 1.0}, {-0.5, -0.5}}, f64),
                                                      std::vector<double>{1.5, 2.5});
  JulepOptions o;
  o.steps = 6;
  o.eps = 0.05;
  auto s = make_baseline(target, GetParam(), o, 21, 0.05);
  torch::manual_seed(22);
  auto batch = sample_julep(s.sampler, 12000, 12000, 23);
  auto w = torch::exp(batch.log_w - target->log_z());
  const double mean = w.mean().item<double>(), se = w.std().item<double>() / std::sqrt(12000.0);
  EXPECT_LT(se, 0.08);  // the check has power
  EXPECT_NEAR(mean, 1.0, 3 * se) << "standard error " << se;
  EXPECT_GT(std::abs(mean * std::exp(0.3) - 1.0), 3 * se);  // a normaliser 30% off would be seen
}

// Two rings in 2D (one free particle around the anchor, an O(2)-invariant two-mode mixture):
// U(y) = -log[ exp(-(r - 1)^2 / (2 s^2)) + exp(-(r - 2.5)^2 / (2 s^2)) ], s = 0.25.
class TwoRings : public Energy {
 public:
  std::string name() const override { return "two-rings"; }
  int64_t num_particles() const override { return 2; }
  int64_t dim() const override { return 2; }
  double length_scale() const override { return 1.0; }
  torch::Tensor energy(const torch::Tensor& x, double) const override {
    auto r = (x.select(1, 1) - x.select(1, 0)).pow(2).sum(-1).sqrt();
    return -torch::logsumexp(torch::stack({-(r - 1.0).pow(2) / (2 * s2), -(r - 2.5).pow(2) / (2 * s2)}), 0);
  }
  // Z = int 2 pi r exp(-U) dr by Simpson's rule on [0, 6].
  static double log_z() {
    const int64_t n = 6000;
    auto r = torch::linspace(0.0, 6.0, n + 1, f64);
    auto f = 2 * kPi * r * ((-(r - 1.0).pow(2) / (2 * s2)).exp() + (-(r - 2.5).pow(2) / (2 * s2)).exp());
    auto w = torch::ones({n + 1}, f64);
    w.slice(0, 1, n, 2).fill_(4.0);
    w.slice(0, 2, n, 2).fill_(2.0);
    return std::log((w * f).sum().item<double>() * (6.0 / n) / 3);
  }

 private:
  static constexpr double s2 = 0.0625;
};

TEST_P(Baselines, TrainingOnATwoModeMixtureLowersItsOwnLossOnFreshPaths) {
  // Each baseline lowers the loss it trains (PIS: the reverse KL E[log Z - log w]; DDS:
  // Var[log w]) on 4000 fresh paths, the same noise before and after, and keeps log Z.
  const Baseline b = GetParam();
  auto target = std::make_shared<TwoRings>();
  JulepOptions o;
  o.steps = 8;
  o.eps = 0.1;
  auto s = make_baseline(target, b, o, 31, 0.0);  // the network at its initialisation: AIS
  struct Measured {
    double loss;
    ImportanceSummary summary;
  };
  auto evaluate = [&] {
    auto log_w = sample_julep(s.sampler, 4000, 4000, 32).log_w;
    const double loss = b.objective == "reverse_kl" ? TwoRings::log_z() - log_w.mean().item<double>()
                                                    : log_w.var().item<double>();
    return Measured{loss, summarize_log_weights(log_w)};
  };
  const Measured before = evaluate();
  JulepTrainingOptions t;
  t.objective = b.objective;
  t.iterations = 60;
  t.samples = 128;
  t.learning_rate = b.learning_rate;
  t.warmup_iterations = 5;
  t.log_every = 100;
  train_julep(s.sampler, t);
  const Measured after = evaluate();
  EXPECT_LT(after.loss, 0.7 * before.loss) << b.name << ": " << b.objective << " " << before.loss << " -> " << after.loss;
  // log Z within 4 delta-method standard errors of the quadrature, se = sqrt((1/ESS - 1) / S).
  const double se = std::sqrt((1.0 / after.summary.ess - 1.0) / 4000.0);
  EXPECT_NEAR(after.summary.log_z, TwoRings::log_z(), 4 * se + 1e-3) << b.name;
}

INSTANTIATE_TEST_SUITE_P(PisDds, Baselines,
                         ::testing::Values(Baseline{"pis", "reverse_kl", 1.0, 1e-2}, Baseline{"dds", "log_variance", 1.4, 3e-3}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mintjulep
