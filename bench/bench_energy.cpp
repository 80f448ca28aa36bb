// Energy + gradient throughput of the built-in systems, in configurations per second.
//   build/bench/bench_energy [--benchmark_filter=lj55]
// Threads: MINTJULEP_THREADS (default: one per core) is passed to at::set_num_threads.
#include <mintjulep/energy.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/systems.hpp>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <benchmark/benchmark.h>

#include "bench_main.hpp"

#include <cstdlib>

namespace {

using namespace mintjulep;

void energy_and_gradient(benchmark::State& state, const std::string& name, torch::ScalarType dtype) {
  auto system = make_system(name);
  AnchoredEnergy energy(system, 0);
  const int64_t batch = state.range(0);
  torch::manual_seed(0);
  // Perturbed cubic lattice at spacing 1.1: a typical, overlap-free cluster configuration.
  const auto side = static_cast<int64_t>(std::ceil(std::cbrt(static_cast<double>(system->num_particles()))));
  auto g = torch::arange(side, torch::kFloat64) * 1.1;
  auto sites = torch::stack(torch::meshgrid({g, g, g}, "ij"), -1).reshape({-1, 3}).narrow(0, 0, system->num_particles());
  auto x = (sites.unsqueeze(0) + 0.05 * torch::randn({batch, system->num_particles(), 3}, torch::kFloat64)).to(dtype);
  auto y = energy.to_anchored(x);
  for (auto _ : state) {
    auto vg = energy.value_and_grad(y, 1.0);
    benchmark::DoNotOptimize(vg.grad.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["threads"] = at::get_num_threads();
}

// Alanine dipeptide: the PDB structure with 0.01 nm noise.
void molecule_energy_and_gradient(benchmark::State& state, const std::string& name) {
  auto system = std::dynamic_pointer_cast<MolecularEnergy>(make_system(name));
  AnchoredEnergy energy(system, system->default_anchor());
  const int64_t batch = state.range(0);
  torch::manual_seed(0);
  auto x0 = system->reference_configuration();
  auto y = energy.to_anchored(x0 + 0.01 * torch::randn({batch, x0.size(1), 3}, torch::kFloat64));
  for (auto _ : state) {
    auto vg = energy.value_and_grad(y, 1.0);
    benchmark::DoNotOptimize(vg.grad.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["threads"] = at::get_num_threads();
}

void BM_Ala2_Vacuum(benchmark::State& s) { molecule_energy_and_gradient(s, "ala2"); }
void BM_Ala2_Implicit(benchmark::State& s) { molecule_energy_and_gradient(s, "ala2-implicit"); }
BENCHMARK(BM_Ala2_Vacuum)->Arg(1)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Ala2_Implicit)->Arg(1)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Lj55_Float32(benchmark::State& s) { energy_and_gradient(s, "lj55", torch::kFloat32); }
void BM_Lj55_Float64(benchmark::State& s) { energy_and_gradient(s, "lj55", torch::kFloat64); }
void BM_Lj13_Float64(benchmark::State& s) { energy_and_gradient(s, "lj13", torch::kFloat64); }

BENCHMARK(BM_Lj55_Float32)->Arg(1)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Lj55_Float64)->Arg(1)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Lj13_Float64)->Arg(1)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The other half of an annealing step: the score of the broad per-particle shell of
// configs/lj13-half.toml (one component, kappa 0.01, radius 1.1, sigma 0.5) on its path end.
void prior_path_score(benchmark::State& state, const std::string& name) {
  auto system = make_system(name);
  MintPriorOptions options;
  options.num_free = system->num_particles() - 1;
  options.components = 1;
  options.kappa = 0.01;
  options.radius = 1.1;
  options.radius_spread = 0.0;
  options.sigma = 0.5;
  torch::manual_seed(0);
  MintPrior prior(options);
  auto y = prior->sample(state.range(0));
  for (auto _ : state) {
    auto yy = y.detach().requires_grad_(true);
    auto log_q = prior->path_log_prob(yy);
    auto grad = torch::autograd::grad({log_q.sum()}, {yy})[0];
    benchmark::DoNotOptimize(grad.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["threads"] = at::get_num_threads();
}

void BM_Lj55_PriorScore(benchmark::State& s) { prior_path_score(s, "lj55"); }
void BM_Lj13_PriorScore(benchmark::State& s) { prior_path_score(s, "lj13"); }
BENCHMARK(BM_Lj55_PriorScore)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Lj13_PriorScore)->Arg(100)->Arg(2000)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

MINTJULEP_BENCHMARK_MAIN()
