#include <mintjulep/error.hpp>
#include <mintjulep/julep_training.hpp>

#include "training/schedule.hpp"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include <chrono>
#include <cmath>

namespace mintjulep {

JulepTrainingResult train_julep(JulepSampler& sampler, const JulepTrainingOptions& options,
                                const std::function<void(const JulepProgress&)>& progress) {
  check(options.samples >= 2, "julep training needs samples >= 2");
  check(options.chunk_steps >= 1, "julep chunk_steps must be >= 1");
  check(options.step_fraction > 0 && options.step_fraction <= 1, "julep step_fraction must be in (0, 1]");
  check(options.trim_fraction >= 0 && options.trim_fraction < 0.5, "julep trim_fraction must be in [0, 0.5)");
  const auto start = std::chrono::steady_clock::now();
  // The prior is frozen in this stage: only the network and the noise levels train.
  for (auto& p : sampler->prior()->parameters()) p.set_requires_grad(false);
  std::vector<torch::Tensor> parameters = sampler->network()->parameters();
  if (sampler->options().learn_eps) parameters.push_back(sampler->log_eps);
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(options.learning_rate));
  std::mt19937_64 rng(options.seed);
  std::bernoulli_distribution keep_chunk(options.step_fraction);
  const int64_t T = sampler->options().steps;
  JulepTrainingResult result;
  for (int64_t it = 0; it < options.iterations; ++it) {
    const double warm = options.warmup_iterations > 0
                            ? std::min(1.0, static_cast<double>(it + 1) / options.warmup_iterations)
                            : 1.0;
    set_learning_rate(optimizer, warm * cosine_schedule(options.learning_rate, options.final_lr_fraction,
                                                        it, options.iterations));

    auto times = sampler->time_grid(rng);
    auto batch = sampler->simulate(options.samples, times, /*keep_path=*/true);
    auto finite = torch::isfinite(batch.log_w);
    const int64_t kept = finite.sum().item<int64_t>();
    result.dropped += options.samples - kept;
    if (kept < 2) continue;
    auto idx = finite.nonzero().squeeze(1);
    auto path = batch.path.index_select(0, idx);
    auto log_w = batch.log_w.index_select(0, idx);
    if (options.trim_fraction > 0) {
      // Leave the lowest quantile out of the variance: far-out low-weight trajectories
      // otherwise dominate Var[log w] although they barely affect the ESS.
      const double cut = torch::quantile(log_w, options.trim_fraction).item<double>();
      auto upper = (log_w >= cut).nonzero().squeeze(1);
      path = path.index_select(0, upper);
      log_w = log_w.index_select(0, upper);
    }
    const double n = static_cast<double>(log_w.size(0));
    auto centred = log_w - log_w.mean();
    const double loss = centred.pow(2).sum().item<double>() / n;
    // d/dtheta of (1/n) sum (lw - mean)^2 = (2/n) sum (lw - mean) d lw / dtheta.
    auto coefficient = (2.0 / n) * centred.to(path.scalar_type());
    optimizer.zero_grad();
    for (int64_t first = 1; first <= T; first += options.chunk_steps) {
      if (options.step_fraction < 1 && !keep_chunk(rng)) continue;
      const int64_t last = std::min(T + 1, first + options.chunk_steps);
      auto terms = sampler->kernel_log_weight(path, times, first, last);
      ((coefficient * terms).sum() / options.step_fraction).backward();
    }
    if (options.clip_norm > 0) torch::nn::utils::clip_grad_norm_(parameters, options.clip_norm);
    optimizer.step();
    result.iterations = it + 1;
    if (progress && options.log_every > 0 &&
        (it % options.log_every == 0 || it + 1 == options.iterations)) {
      JulepProgress p;
      p.iteration = it;
      p.loss = loss;
      p.batch_ess = summarize_log_weights(batch.log_w).ess;
      p.dropped = result.dropped;
      p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      progress(p);
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

SampleBatch sample_julep(JulepSampler& sampler, int64_t count, int64_t chunk, uint64_t seed,
                         const std::function<void(int64_t)>& progress) {
  check(count >= 1 && chunk >= 1, "sampling needs count >= 1 and chunk >= 1");
  std::mt19937_64 rng(seed);
  std::vector<torch::Tensor> ys, log_ws;
  for (int64_t done = 0; done < count;) {
    const int64_t b = std::min(chunk, count - done);
    auto batch = sampler->simulate(b, sampler->time_grid(rng), /*keep_path=*/false);
    ys.push_back(batch.final.detach());
    log_ws.push_back(batch.log_w.detach());
    done += b;
    if (progress) progress(done);
  }
  return {torch::cat(ys), torch::cat(log_ws)};
}

}  // namespace mintjulep
