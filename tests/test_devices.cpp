// The same computations on every test device (cpu, and cuda where a GPU is present; the cuda
// instances skip elsewhere): energies and forces of the built-in systems and of alanine
// dipeptide, the Mint prior's density, gradient and sampler, and the Julep path weights and the
// kernel-training gradient, each against finite differences or the CPU result.
#include <mintjulep/egnn.hpp>
#include <mintjulep/energy.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cctype>
#include <cmath>
#include <random>
#include <tuple>

#include "test_helpers.hpp"

namespace mintjulep {
namespace {

using testing::lattice_configurations;
using testing::max_relative_error;
using testing::test_devices;

auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

std::string test_name(std::string name) {
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

// --- energies and forces ------------------------------------------------------------------

class EnergyOnDevice : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override { MINTJULEP_SKIP_UNLESS_DEVICE(device_name()); }
  std::string system_name() const { return std::get<0>(GetParam()); }
  std::string device_name() const { return std::get<1>(GetParam()); }
  torch::Device device() const { return torch::Device(device_name()); }
  // Finite differences of the stiff molecular terms need a looser tolerance.
  double fd_tolerance() const { return system_name().rfind("ala2", 0) == 0 ? 1e-5 : 1e-6; }

  // float64 configurations on the CPU: the molecule's structure plus 0.005 nm of noise, or a
  // jittered lattice.
  torch::Tensor configurations(const Energy& system, int64_t batch, uint64_t seed) const {
    auto reference = system.reference_configuration();
    if (reference.defined()) {
      torch::manual_seed(seed);
      return reference.to(torch::kFloat64).expand({batch, -1, -1}) +
             0.005 * torch::randn({batch, system.num_particles(), system.dim()}, f64);
    }
    const bool lj = system_name().rfind("lj", 0) == 0;
    return lattice_configurations(batch, system.num_particles(), system.dim(), lj ? 1.1 : 4.0,
                                  lj ? 0.08 : 0.5, seed);
  }
};

TEST_P(EnergyOnDevice, EnergiesAndGradientsEqualTheCpuResult) {
  auto system = make_system(system_name());
  AnchoredEnergy energy(system, system->default_anchor());
  auto y = energy.to_anchored(configurations(*system, 200, 21));  // > 128: the sliced path
  for (double t : {0.3, 1.0}) {
    auto cpu = energy.value_and_grad(y, t);
    auto dev = energy.value_and_grad(y.to(device()), t);
    ASSERT_EQ(dev.value.device().type(), device().type());
    ASSERT_EQ(dev.grad.device().type(), device().type());
    EXPECT_LT(max_relative_error(dev.value.cpu(), cpu.value), 1e-10) << "t = " << t;
    EXPECT_LT(max_relative_error(dev.grad.cpu(), cpu.grad), 1e-10) << "t = " << t;
    // float32 on the device stays close to float64.
    auto single = energy.value(y.to(device(), torch::kFloat32), t);
    EXPECT_EQ(single.scalar_type(), torch::kFloat32);
    EXPECT_LT(max_relative_error(single.to(torch::kCPU, torch::kFloat64), cpu.value), 1e-3) << "t = " << t;
  }
}

TEST_P(EnergyOnDevice, GradientMatchesCentralFiniteDifferences) {
  auto system = make_system(system_name());
  AnchoredEnergy energy(system, system->default_anchor());
  auto y = energy.to_anchored(configurations(*system, 1, 22)).to(device());
  for (double t : {0.0, 0.37, 1.0}) {
    auto grad = energy.value_and_grad(y, t).grad.flatten();
    const int64_t d = grad.numel();
    const double h = 1e-5;
    auto eye = torch::eye(d, f64.device(device())).reshape({d, y.size(1), y.size(2)});
    auto fd = (energy.value(y + h * eye, t) - energy.value(y - h * eye, t)) / (2 * h);
    EXPECT_LT((fd - grad).norm().item<double>() / grad.norm().item<double>(), fd_tolerance())
        << "t = " << t;
  }
}

TEST_P(EnergyOnDevice, FullForcesAreMinusTheGradient) {
  auto system = make_system(system_name());
  AnchoredEnergy energy(system, system->default_anchor());
  auto x = configurations(*system, 3, 23).to(device()).requires_grad_(true);
  auto grad_x = torch::autograd::grad({system->energy(x, 1.0).sum()}, {x})[0];
  auto forces = energy.full_forces(energy.value_and_grad(energy.to_anchored(x.detach()), 1.0).grad);
  ASSERT_EQ(forces.device().type(), device().type());
  EXPECT_LT(max_relative_error(forces, -grad_x), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(Devices, EnergyOnDevice,
                         ::testing::Combine(::testing::Values("dw4", "lj13", "ala2", "ala2-implicit"),
                                            ::testing::ValuesIn(test_devices())),
                         [](const auto& info) {
                           return test_name(std::get<0>(info.param) + "_" + std::get<1>(info.param));
                         });

// --- the Mint prior -----------------------------------------------------------------------

class PriorOnDevice : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { MINTJULEP_SKIP_UNLESS_DEVICE(GetParam()); }
  torch::Device device() const { return torch::Device(GetParam()); }

  // The same random prior every call (on the CPU): 3 components, unequal weights and kappas.
  static MintPrior make_prior(int64_t num_free, int64_t dim) {
    torch::manual_seed(7);
    MintPriorOptions o;
    o.num_free = num_free;
    o.dim = dim;
    o.components = 3;
    o.kappa = 3.0;
    o.sigma = 0.3;
    o.radius = 1.0;
    MintPrior prior(o);
    torch::NoGradGuard no_grad;
    prior->logits.copy_(torch::randn({3}, f64));
    prior->log_kappa.add_(0.5 * torch::randn({3}, f64));
    return prior;
  }
};

TEST_P(PriorOnDevice, LogProbAndItsGradientEqualTheCpuResult) {
  for (int64_t dim : {2, 3}) {
    auto cpu = make_prior(4, dim);
    auto dev = make_prior(4, dim);
    dev->to(device());
    torch::manual_seed(8);
    auto y = torch::randn({50, 4, dim}, f64);
    auto y_dev = y.to(device()).requires_grad_(true);
    auto y_cpu = y.clone().requires_grad_(true);
    auto lp_dev = dev->log_prob(y_dev), lp_cpu = cpu->log_prob(y_cpu);
    ASSERT_EQ(lp_dev.device().type(), device().type());
    EXPECT_LT(max_relative_error(lp_dev.detach().cpu(), lp_cpu.detach()), 1e-10) << "n = " << dim;
    auto g_dev = torch::autograd::grad({lp_dev.sum()}, {y_dev})[0];
    auto g_cpu = torch::autograd::grad({lp_cpu.sum()}, {y_cpu})[0];
    EXPECT_LT(max_relative_error(g_dev.cpu(), g_cpu), 1e-9) << "n = " << dim;
    // Parameter gradients (the Mint stage trains them): equal too.
    auto p_dev = torch::autograd::grad({dev->log_prob(y.to(device())).sum()}, {dev->mu})[0];
    auto p_cpu = torch::autograd::grad({cpu->log_prob(y).sum()}, {cpu->mu})[0];
    EXPECT_LT(max_relative_error(p_dev.cpu(), p_cpu), 1e-9) << "n = " << dim;
    torch::NoGradGuard no_grad;
    EXPECT_LT(max_relative_error(dev->path_log_prob(y.to(device())).cpu(), cpu->path_log_prob(y)), 1e-10);
  }
}

TEST_P(PriorOnDevice, SamplesLieOnTheDeviceAndFollowTheDensity) {
  // E_q[q'/q] = 1 for a normalised q' (the same family, perturbed) only if the draws follow q.
  auto q = make_prior(3, 3), q2 = make_prior(3, 3);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(9);
    for (auto& p : q2->parameters()) p.add_(0.1 * torch::randn_like(p));
  }
  q->to(device());
  q2->to(device());
  torch::manual_seed(10);
  const int64_t count = 100000;
  torch::NoGradGuard no_grad;
  auto y = q->sample(count);
  ASSERT_EQ(y.device().type(), device().type());
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{count, 3, 3}));
  auto ratio = torch::exp(q2->log_prob(y) - q->log_prob(y));
  EXPECT_TRUE(testing::mean_is_one(ratio, 0.03));
}

TEST_P(PriorOnDevice, GaussianFamilyEqualsTheCpuResultAndSamplesItsDensity) {
  auto make = [](int64_t dim, uint64_t seed) {
    torch::manual_seed(seed);
    MintPriorOptions o;
    o.family = "gaussian";
    o.num_free = 4;
    o.dim = dim;
    o.components = 3;
    o.sigma = 0.3;
    MintPrior prior(o);
    torch::NoGradGuard no_grad;
    prior->logits.copy_(torch::randn({3}, f64));
    prior->precision_upper.copy_(0.5 * torch::randn_like(prior->precision_upper));
    return prior;
  };
  for (int64_t dim : {2, 3}) {
    auto cpu = make(dim, 11), dev = make(dim, 11);
    dev->to(device());
    torch::manual_seed(12);
    auto y = cpu->sample(50);
    auto y_dev = y.to(device()).requires_grad_(true);
    auto y_cpu = y.clone().requires_grad_(true);
    auto lp_dev = dev->log_prob(y_dev), lp_cpu = cpu->log_prob(y_cpu);
    EXPECT_LT(max_relative_error(lp_dev.detach().cpu(), lp_cpu.detach()), 1e-10) << "n = " << dim;
    auto g_dev = torch::autograd::grad({lp_dev.sum()}, {y_dev})[0];
    auto g_cpu = torch::autograd::grad({lp_cpu.sum()}, {y_cpu})[0];
    EXPECT_LT(max_relative_error(g_dev.cpu(), g_cpu), 1e-9) << "n = " << dim;
    auto q2 = make(dim, 11);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : q2->parameters()) p.add_(0.1 * torch::randn_like(p));
    }
    q2->to(device());
    torch::NoGradGuard no_grad;
    auto draws = dev->sample(100000);
    ASSERT_EQ(draws.device().type(), device().type());
    auto ratio = torch::exp(q2->log_prob(draws) - dev->log_prob(draws));
    const double se = ratio.std().item<double>() / std::sqrt(100000.0);
    EXPECT_NEAR(ratio.mean().item<double>(), 1.0, 3 * se) << "n = " << dim;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, PriorOnDevice, ::testing::ValuesIn(test_devices()),
                         [](const auto& info) { return test_name(info.param); });

// --- Julep path weights and the kernel-training gradient ----------------------------------

class JulepOnDevice : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { MINTJULEP_SKIP_UNLESS_DEVICE(GetParam()); }
  torch::Device device() const { return torch::Device(GetParam()); }

  // DW-4, T = 5, with random non-zero network parameters (b, Util and A all active); the same
  // sampler every call, on `device`.
  static JulepSampler make_sampler(torch::Device device) {
    torch::manual_seed(11);
    auto system = make_system("dw4");
    auto energy = std::make_shared<AnchoredEnergy>(system, 0);
    MintPriorOptions po;
    po.num_free = 3;
    po.dim = 2;
    po.components = 2;
    po.kappa = 2.0;
    po.sigma = 0.4;
    po.radius = 4.0;
    MintPrior prior(po);
    EgnnOptions eo;
    eo.hidden = 16;
    eo.layers = 2;
    eo.rank = 2;
    eo.length_scale = system->length_scale();
    Egnn net(eo, system->particle_types(), 0, system->dim());
    net->to(torch::kFloat64);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : net->named_parameters())
        if (p.key() != "h_out.weight") p.value().add_(0.1 * torch::randn_like(p.value()));
    }
    JulepOptions o;
    o.steps = 5;
    o.eps = 0.02;
    JulepSampler sampler(prior, energy, net, o);
    sampler->to(device);
    return sampler;
  }
};

TEST_P(JulepOnDevice, PathWeightsAndTrainingGradientEqualTheCpuResult) {
  auto cpu = make_sampler(torch::kCPU), dev = make_sampler(device());
  std::mt19937_64 rng(12);
  auto times = cpu->time_grid(rng);
  torch::manual_seed(13);
  const int64_t count = 64;
  torch::Tensor y0;
  {
    torch::NoGradGuard no_grad;
    y0 = cpu->prior()->sample(count);
  }
  auto noise = torch::randn({5, count, 3, 2}, f64);
  // The same start and noise: the same trajectories and weights.
  auto a = cpu->simulate_from(y0, times, /*keep_path=*/true, noise);
  auto b = dev->simulate_from(y0.to(device()), times, /*keep_path=*/true, noise.to(device()));
  ASSERT_EQ(b.log_w.device().type(), device().type());
  ASSERT_TRUE(torch::isfinite(a.log_w).all().item<bool>());
  EXPECT_LT(max_relative_error(b.path.cpu(), a.path), 1e-9);
  EXPECT_LT((b.log_w.cpu() - a.log_w).abs().max().item<double>(), 1e-7);
  // The log-variance gradient of one chunk of steps, as the kernel training takes it.
  auto loss = [](JulepSampler& s, const PathBatch& batch, const std::vector<double>& t) {
    auto centred = batch.log_w - batch.log_w.mean();
    return (centred.to(batch.path.scalar_type()) * s->kernel_log_weight(batch.path, t, 1, 4)).sum();
  };
  auto params_cpu = cpu->network()->parameters(), params_dev = dev->network()->parameters();
  auto g_cpu = torch::autograd::grad({loss(cpu, a, times)}, params_cpu, {}, false, false, true);
  auto g_dev = torch::autograd::grad({loss(dev, b, times)}, params_dev, {}, false, false, true);
  ASSERT_EQ(g_cpu.size(), g_dev.size());
  for (size_t i = 0; i < g_cpu.size(); ++i) {
    ASSERT_EQ(g_cpu[i].defined(), g_dev[i].defined()) << "parameter " << i;
    if (!g_cpu[i].defined()) continue;
    EXPECT_LT((g_dev[i].cpu() - g_cpu[i]).abs().max().item<double>(),
              1e-6 * std::max(1.0, g_cpu[i].abs().max().item<double>()))
        << "parameter " << i;
  }
  // The differentiable path weight (reverse-KL objective) agrees with the simulation.
  auto d = dev->differentiable_log_weight(y0.to(device()), times, noise.to(device()));
  EXPECT_LT((d.detach().cpu() - a.log_w).abs().max().item<double>(), 1e-7);
}

INSTANTIATE_TEST_SUITE_P(Devices, JulepOnDevice, ::testing::ValuesIn(test_devices()),
                         [](const auto& info) { return test_name(info.param); });

}  // namespace
}  // namespace mintjulep
