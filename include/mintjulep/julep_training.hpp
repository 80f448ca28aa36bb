#pragma once
// Stage 2: training the Julep kernel on detached trajectories (DESIGN.md §4).
#include <mintjulep/chunks.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/julep.hpp>

#include <functional>
#include <string>
#include <vector>

namespace mintjulep {

struct JulepTrainingOptions {
  // "log_variance": Var[log w] on detached trajectories (DESIGN.md §4).
  // "reverse_kl": -mean log w, differentiated through the trajectory (reparameterised noise);
  //   memory grows with T.
  // "reverse_kl+log_variance": reverse KL for the first reverse_kl_fraction of the
  //   iterations, then log-variance.
  std::string objective = "log_variance";
  double reverse_kl_fraction = 0.5;
  int64_t iterations = 300;
  int64_t samples = 100;           // trajectories per iteration
  double learning_rate = 1e-3;     // Adam; linear warm-up, then cosine decay ...
  double eps_learning_rate = 0;    // for the per-step noise levels log eps (0: learning_rate)
  double final_lr_fraction = 0.1;  // ... to this fraction
  int64_t warmup_iterations = 20;
  int64_t chunk_steps = 10;        // gradient accumulated over chunks of grid points: memory ~ chunk, not T
  // ... and at most this many configurations x N^2 (edges of the network's graph) per backward
  // pass, trajectories split where needed: peak memory ~ chunk_edges x hidden x layers,
  // whatever the batch, T and N. Passes much larger than this run slower, not faster: at 2^17
  // edges (33 MB per edge tensor) matrix products and tanh fall out of cache (LJ-13 training
  // 12% slower than one grid point per pass).
  int64_t chunk_edges = int64_t{1} << 15;
  double step_fraction = 1.0;      // keep each chunk with this probability, scaled by its inverse
  double clip_norm = 10.0;         // gradient norm clipping (0: off)
  double trim_fraction = 0.0;      // leave the lowest quantile of log w out of the objective
  int64_t log_every = 10;
  uint64_t seed = 0;               // for the random time grid and step subsampling
  // Resumable training: when set, the state (parameters, Adam moments, iteration, counters) is
  // written atomically to this file every checkpoint_every iterations, and a run that finds
  // the file continues from it. Each iteration reseeds the random streams from (seed,
  // iteration), so a resumed run repeats the uninterrupted one.
  std::string state_path;
  int64_t checkpoint_every = 10;
};

struct JulepProgress {
  int64_t iteration = 0;
  std::string objective;  // the objective of this iteration
  double loss = 0;        // Var[log w] (log_variance) or -mean log w (reverse_kl) of the batch
  double batch_ess = 0;  // ESS of the batch
  int64_t dropped = 0;   // non-finite log w dropped so far
  double seconds = 0;
};

struct JulepTrainingResult {
  int64_t iterations = 0;
  int64_t dropped = 0;
  int64_t skipped = 0;          // iterations without a step: a non-finite gradient (this process)
  double seconds = 0;           // including the time before a resume
  int64_t resumed_from = -1;    // the iteration a saved state resumed at (-1: fresh start)
};

// Kernel training. Log-variance: per iteration simulate S trajectories, detach them, and
// descend Var_s[log w_s]; grad = (2/S) sum_s (log w_s - mean) grad log w_s is accumulated over
// chunks of steps, so peak memory does not grow with T. Reverse KL: descend -mean_s log w_s
// through the simulation itself. Non-finite log w are dropped and counted.
// The objectives train_julep accepts.
const std::vector<std::string>& julep_objectives();

// progress: every log_every iterations. on_iteration: with the number of iterations done, once
// before the first iteration of this call (0, or where a saved state resumes) and after each.
JulepTrainingResult train_julep(JulepSampler& sampler, const JulepTrainingOptions& options,
                                const std::function<void(const JulepProgress&)>& progress = {},
                                const std::function<void(int64_t)>& on_iteration = {});

struct SampleBatch {
  torch::Tensor y;      // (count, M, n) final positions
  torch::Tensor log_w;  // (count,) float64
};

// `count` fresh trajectories in chunks of `chunk` (no path kept), on the uniform grid (or fresh
// random grids per chunk). Each chunk draws from streams seeded from (seed, chunk index), so
// chunks taken from `cache` (and every finished one saved there) give the same result as
// drawing them all.
SampleBatch sample_julep(JulepSampler& sampler, int64_t count, int64_t chunk, uint64_t seed,
                         const std::function<void(int64_t done)>& progress = {}, const ChunkCache& cache = {});

}  // namespace mintjulep
