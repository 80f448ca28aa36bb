// Julep kernel throughput in trajectory-steps per second (batch x T per second), for sampling
// (simulate, no path kept) and for one log-variance training iteration (simulate with the
// path + chunked double-backward gradient), with a freshly initialised 3 x 64 EGNN (float32)
// and a 16-component Mint prior; Ais: the same sampling with the network off (what the prior,
// the target and the kernel means cost).
//   build/bench/bench_kernel [--benchmark_filter=dw4]
// Arguments: batch, T. Threads: MINTJULEP_THREADS (default: one per core).
#include <mintjulep/egnn.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/julep_training.hpp>
#include <mintjulep/systems.hpp>

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "bench_main.hpp"

#include <sys/resource.h>

#include <cstdlib>

namespace {

using namespace mintjulep;

JulepSampler make_sampler(const std::string& name, int64_t steps, bool with_network = true) {
  torch::manual_seed(0);
  auto system = make_system(name);
  auto energy = std::make_shared<AnchoredEnergy>(system, 0);
  MintPriorOptions po;
  po.num_free = system->num_particles() - 1;
  po.dim = system->dim();
  po.components = 16;
  po.radius = system->length_scale();
  MintPrior prior(po);
  EgnnOptions eo;
  eo.length_scale = system->length_scale();
  Egnn network(eo, system->particle_types(), 0, system->dim());
  network->to(torch::kFloat32);
  JulepOptions jo;
  jo.steps = steps;
  jo.eps = 0.01;
  jo.use_a = jo.use_b = jo.use_util = with_network;  // off: plain AIS, what the rest of a step costs
  return JulepSampler(prior, energy, network, jo);
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void sampling(benchmark::State& state, const std::string& name, bool with_network = true) {
  const int64_t batch = state.range(0), steps = state.range(1);
  auto sampler = make_sampler(name, steps, with_network);
  std::mt19937_64 rng(0);
  auto times = sampler->time_grid(rng);
  for (auto _ : state) {
    auto out = sampler->simulate(batch, times, /*keep_path=*/false);
    benchmark::DoNotOptimize(out.log_w.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch * steps);
  state.counters["peak_rss_MB"] = peak_rss_mb();
}

void training(benchmark::State& state, const std::string& name) {
  const int64_t batch = state.range(0), steps = state.range(1);
  auto sampler = make_sampler(name, steps);
  JulepTrainingOptions options;
  options.iterations = 1;
  options.samples = batch;
  options.chunk_steps = 10;
  options.log_every = 0;
  for (auto _ : state) train_julep(sampler, options);
  state.SetItemsProcessed(state.iterations() * batch * steps);
  state.counters["peak_rss_MB"] = peak_rss_mb();
}

void BM_Sample_Dw4(benchmark::State& s) { sampling(s, "dw4"); }
void BM_Sample_Lj13(benchmark::State& s) { sampling(s, "lj13"); }
void BM_Sample_Lj55(benchmark::State& s) { sampling(s, "lj55"); }
void BM_Ais_Dw4(benchmark::State& s) { sampling(s, "dw4", false); }
void BM_Ais_Lj13(benchmark::State& s) { sampling(s, "lj13", false); }
void BM_Train_Dw4(benchmark::State& s) { training(s, "dw4"); }
void BM_Train_Lj13(benchmark::State& s) { training(s, "lj13"); }
void BM_Train_Lj55(benchmark::State& s) { training(s, "lj55"); }

// One iteration each: a single pass is already seconds to minutes on a CPU.
#define KERNEL_BENCH(fn, T) \
  BENCHMARK(fn)->Args({100, T})->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime()
KERNEL_BENCH(BM_Sample_Dw4, 100);
KERNEL_BENCH(BM_Train_Dw4, 100);
KERNEL_BENCH(BM_Sample_Lj13, 100);
KERNEL_BENCH(BM_Train_Lj13, 100);
KERNEL_BENCH(BM_Sample_Lj55, 10);  // T = 10: LJ-55 at T = 100 takes minutes per pass
KERNEL_BENCH(BM_Train_Lj55, 10);
// The same steps with the network switched off (A = b = Util = 0): prior, target, kernel means.
KERNEL_BENCH(BM_Ais_Dw4, 100);
KERNEL_BENCH(BM_Ais_Lj13, 100);

}  // namespace

MINTJULEP_BENCHMARK_MAIN()
