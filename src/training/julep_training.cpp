#include <mintjulep/error.hpp>
#include <mintjulep/julep_training.hpp>

#include "io/atomic_file.hpp"
#include "training/schedule.hpp"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>

namespace mintjulep {

const std::vector<std::string>& julep_objectives() {
  static const std::vector<std::string> names{"log_variance", "reverse_kl", "reverse_kl+log_variance"};
  return names;
}

namespace {

struct IterationLoss {
  double loss = 0;
  double batch_ess = 0;
  int64_t dropped = 0;
  bool stepped = false;  // false when fewer than 2 finite trajectories were left
};

// One log-variance gradient on detached trajectories, accumulated chunk by chunk into .grad.
IterationLoss log_variance_gradient(JulepSampler& sampler, const JulepTrainingOptions& options,
                                    const std::vector<double>& times, std::mt19937_64& rng) {
  IterationLoss out;
  std::bernoulli_distribution keep_chunk(options.step_fraction);
  const int64_t T = sampler->options().steps;
  auto batch = sampler->simulate(options.samples, times, /*keep_path=*/true);
  out.batch_ess = summarize_log_weights(batch.log_w).ess;
  auto finite = torch::isfinite(batch.log_w);
  const int64_t kept = finite.sum().item<int64_t>();
  out.dropped = options.samples - kept;
  if (kept < 2) return out;
  auto idx = finite.nonzero().squeeze(1);
  auto path = batch.path.index_select(0, idx);
  auto fixed_score = batch.fixed_score.index_select(0, idx);
  auto log_w = batch.log_w.index_select(0, idx);
  if (options.trim_fraction > 0) {
    // Leave the lowest quantile out of the variance: far-out low-weight trajectories
    // otherwise dominate Var[log w] although they barely affect the ESS.
    const double cut = torch::quantile(log_w, options.trim_fraction).item<double>();
    auto upper = (log_w >= cut).nonzero().squeeze(1);
    path = path.index_select(0, upper);
    fixed_score = fixed_score.index_select(0, upper);
    log_w = log_w.index_select(0, upper);
  }
  const double n = static_cast<double>(log_w.size(0));
  auto centred = log_w - log_w.mean();
  out.loss = centred.pow(2).sum().item<double>() / n;
  // d/dtheta of (1/n) sum (lw - mean)^2 = (2/n) sum (lw - mean) d lw / dtheta.
  auto coefficient = (2.0 / n) * centred.to(path.scalar_type()) / options.step_fraction;
  // The terms of log w split over the T + 1 grid points, one network evaluation each; chunks
  // of chunk_steps points, at most chunk_edges configurations x N^2 edges per backward pass.
  const int64_t edges = (path.size(2) + 1) * (path.size(2) + 1);
  const int64_t max_configurations = std::max<int64_t>(1, options.chunk_edges / edges);
  for (int64_t first = 0; first <= T; first += options.chunk_steps) {
    if (options.step_fraction < 1 && !keep_chunk(rng)) continue;
    const int64_t last = std::min(T + 1, first + options.chunk_steps);
    sampler->accumulate_kernel_gradient(path, fixed_score, times, coefficient, first, last, max_configurations);
  }
  out.stepped = true;
  return out;
}

// One reverse-KL gradient: KL(forward path || backward path) = log Z - E[log w], so descend
// -mean log w through the trajectories.
IterationLoss reverse_kl_gradient(JulepSampler& sampler, const JulepTrainingOptions& options,
                                  const std::vector<double>& times) {
  IterationLoss out;
  torch::Tensor y0;
  {
    torch::NoGradGuard no_grad;
    y0 = sampler->prior()->sample(options.samples);
  }
  auto log_w = sampler->differentiable_log_weight(y0, times);
  auto detached = log_w.detach();
  out.batch_ess = summarize_log_weights(detached).ess;
  auto finite = torch::isfinite(detached);
  const int64_t kept = finite.sum().item<int64_t>();
  out.dropped = options.samples - kept;
  if (kept < 2) return out;
  auto kept_log_w = log_w.index_select(0, finite.nonzero().squeeze(1));
  if (options.trim_fraction > 0) {
    // As for the variance: far-out trajectories of negligible weight would dominate the mean.
    const double cut = torch::quantile(kept_log_w.detach(), options.trim_fraction).item<double>();
    kept_log_w = kept_log_w.index_select(0, (kept_log_w.detach() >= cut).nonzero().squeeze(1));
  }
  auto loss = -kept_log_w.mean();
  out.loss = loss.item<double>();
  loss.backward();
  out.stepped = true;
  return out;
}

// The settings a saved training state must share with the run that resumes it.
torch::Tensor state_fingerprint(const JulepSampler& sampler, const JulepTrainingOptions& options) {
  const auto& names = julep_objectives();
  const auto objective = std::find(names.begin(), names.end(), options.objective) - names.begin();
  return torch::tensor(
      {static_cast<double>(options.iterations), static_cast<double>(options.samples), options.learning_rate,
       options.eps_learning_rate, options.final_lr_fraction, static_cast<double>(options.warmup_iterations),
       static_cast<double>(objective), options.reverse_kl_fraction, static_cast<double>(options.chunk_steps),
       options.step_fraction, options.clip_norm, options.trim_fraction, static_cast<double>(options.seed),
       static_cast<double>(sampler->options().steps)},
      torch::kFloat64);
}

struct SavedProgress {
  int64_t next_iteration = 0;
  int64_t dropped = 0;
  double seconds = 0;
};

void save_training_state(const std::string& path, JulepSampler& sampler, torch::optim::Adam& optimizer,
                         const torch::Tensor& fingerprint, const SavedProgress& progress) {
  torch::serialize::OutputArchive archive, model, adam;
  sampler->save(model);
  optimizer.save(adam);
  archive.write("sampler", model);
  archive.write("optimizer", adam);
  archive.write("fingerprint", fingerprint);
  archive.write("progress", torch::tensor({static_cast<double>(progress.next_iteration),
                                           static_cast<double>(progress.dropped), progress.seconds},
                                          torch::kFloat64));
  std::ostringstream bytes;
  archive.save_to(bytes);
  AtomicFile file(path);  // atomic: a reader sees the old state or the new one
  file.write(bytes.str());
  file.commit();
}

SavedProgress load_training_state(const std::string& path, JulepSampler& sampler,
                                  torch::optim::Adam& optimizer, const torch::Tensor& fingerprint) {
  torch::Tensor saved_fingerprint, progress;
  try {
    torch::serialize::InputArchive archive, model, adam;
    archive.load_from(path, sampler->log_eps.device());
    archive.read("fingerprint", saved_fingerprint);
    archive.read("progress", progress);
    check(saved_fingerprint.sizes() == fingerprint.sizes() &&
              torch::equal(saved_fingerprint.cpu(), fingerprint),
          "the training state '" + path +
              "' was written with other [train] or [julep] settings or another seed; resume with the "
              "same config, or delete the file to start over");
    archive.read("sampler", model);
    archive.read("optimizer", adam);
    sampler->load(model);
    optimizer.load(adam);
  } catch (const c10::Error& e) {
    std::string why = std::string(e.what_without_backtrace()).substr(0, 120);
    std::replace(why.begin(), why.end(), '\n', ' ');
    throw Error("cannot resume from the training state '" + path + "': it is damaged or from another model (" +
                why + "); delete it to start over");
  }
  progress = progress.cpu();
  return {static_cast<int64_t>(progress[0].item<double>()), static_cast<int64_t>(progress[1].item<double>()),
          progress[2].item<double>()};
}

}  // namespace

JulepTrainingResult train_julep(JulepSampler& sampler, const JulepTrainingOptions& options,
                                const std::function<void(const JulepProgress&)>& progress,
                                const std::function<void(int64_t)>& on_iteration) {
  const auto& names = julep_objectives();
  check(std::find(names.begin(), names.end(), options.objective) != names.end(),
        "unknown julep objective '" + options.objective +
            "'; use log_variance, reverse_kl or reverse_kl+log_variance");
  check(options.reverse_kl_fraction >= 0 && options.reverse_kl_fraction <= 1,
        "julep reverse_kl_fraction must be in [0, 1]");
  check(options.samples >= 2, "julep training needs samples >= 2");
  check(options.chunk_steps >= 1, "julep chunk_steps must be >= 1");
  check(options.chunk_edges >= 1, "julep chunk_edges must be >= 1");
  check(options.step_fraction > 0 && options.step_fraction <= 1, "julep step_fraction must be in (0, 1]");
  check(options.trim_fraction >= 0 && options.trim_fraction < 0.5, "julep trim_fraction must be in [0, 0.5)");
  check(options.eps_learning_rate >= 0, "julep eps_learning_rate must be >= 0");
  check(options.checkpoint_every >= 1, "julep checkpoint_every must be >= 1");
  const auto start = std::chrono::steady_clock::now();
  // The prior is frozen in this stage: only the network and the noise levels train.
  for (auto& p : sampler->prior()->parameters()) p.set_requires_grad(false);
  // Two groups: the noise levels are a handful of scalars whose useful range spans orders of
  // magnitude, so they may take a larger step than the network weights.
  std::vector<torch::Tensor> parameters = sampler->network()->parameters();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(parameters, std::make_unique<torch::optim::AdamOptions>(options.learning_rate));
  std::vector<double> base_lrs{options.learning_rate};
  if (sampler->options().learn_eps) {
    const double eps_lr = options.eps_learning_rate > 0 ? options.eps_learning_rate : options.learning_rate;
    groups.emplace_back(std::vector<torch::Tensor>{sampler->log_eps},
                        std::make_unique<torch::optim::AdamOptions>(eps_lr));
    base_lrs.push_back(eps_lr);
    parameters.push_back(sampler->log_eps);
  }
  torch::optim::Adam optimizer(std::move(groups), torch::optim::AdamOptions(options.learning_rate));
  const auto fingerprint = state_fingerprint(sampler, options);
  JulepTrainingResult result;
  SavedProgress saved;
  if (!options.state_path.empty() && std::filesystem::exists(options.state_path)) {
    saved = load_training_state(options.state_path, sampler, optimizer, fingerprint);
    result.resumed_from = saved.next_iteration;
    result.iterations = saved.next_iteration;
    result.dropped = saved.dropped;
  }
  const auto elapsed = [&] {
    return saved.seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const int64_t reverse_kl_iterations =
      options.objective == "reverse_kl"                ? options.iterations
      : options.objective == "reverse_kl+log_variance" ? static_cast<int64_t>(std::llround(
                                                             options.reverse_kl_fraction * options.iterations))
                                                       : 0;
  if (on_iteration) on_iteration(saved.next_iteration);
  for (int64_t it = saved.next_iteration; it < options.iterations; ++it) {
    // Random streams derived from (seed, iteration): a resumed run draws what the
    // uninterrupted one would have drawn.
    std::seed_seq seq{static_cast<uint32_t>(options.seed), static_cast<uint32_t>(options.seed >> 32),
                      static_cast<uint32_t>(it)};
    std::mt19937_64 rng(seq);
    torch::manual_seed(rng());
    const double warm = options.warmup_iterations > 0
                            ? std::min(1.0, static_cast<double>(it + 1) / options.warmup_iterations)
                            : 1.0;
    scale_learning_rates(optimizer, base_lrs,
                         warm * cosine_schedule(1.0, options.final_lr_fraction, it, options.iterations));
    const bool reverse_kl = it < reverse_kl_iterations;
    auto times = sampler->time_grid(rng);
    // Zero-filled, never undefined, gradients: Adam skips a parameter without one, so an
    // iteration whose kept steps do not touch it would otherwise update it or not depending on
    // whether an earlier iteration in this process gave it a gradient (and on the LibTorch
    // version's zero_grad), and a resumed run would drift from the uninterrupted one.
    for (auto& p : parameters) {
      if (p.grad().defined()) p.mutable_grad().zero_();
      else p.mutable_grad() = torch::zeros_like(p);
    }
    auto step = reverse_kl ? reverse_kl_gradient(sampler, options, times)
                           : log_variance_gradient(sampler, options, times, rng);
    result.dropped += step.dropped;
    if (step.stepped) {
      // A non-finite gradient (from a trajectory through the steep walls of a pair potential)
      // would make every parameter Adam updates NaN, and with it every later weight: such an
      // iteration takes no step, as a loss scaler does.
      bool finite = true;
      for (const auto& p : parameters) finite = finite && torch::isfinite(p.grad()).all().item<bool>();
      if (finite) {
        if (options.clip_norm > 0) torch::nn::utils::clip_grad_norm_(parameters, options.clip_norm);
        optimizer.step();
      } else {
        ++result.skipped;
      }
    }
    result.iterations = it + 1;
    if (!options.state_path.empty() && ((it + 1) % options.checkpoint_every == 0 || it + 1 == options.iterations))
      save_training_state(options.state_path, sampler, optimizer, fingerprint, {it + 1, result.dropped, elapsed()});
    if (step.stepped && progress && progress_due(it, options.log_every, options.iterations)) {
      JulepProgress p;
      p.iteration = it;
      p.objective = reverse_kl ? "reverse_kl" : "log_variance";
      p.loss = step.loss;
      p.batch_ess = step.batch_ess;
      p.dropped = result.dropped;
      p.seconds = elapsed();
      progress(p);
    }
    if (on_iteration) on_iteration(it + 1);
  }
  result.seconds = elapsed();
  return result;
}

SampleBatch sample_julep(JulepSampler& sampler, int64_t count, int64_t chunk, uint64_t seed,
                         const std::function<void(int64_t)>& progress, const ChunkCache& cache) {
  check(count >= 1 && chunk >= 1, "sampling needs count >= 1 and chunk >= 1");
  std::vector<torch::Tensor> ys, log_ws;
  const auto device = sampler->log_eps.device();
  int64_t index = 0;
  for (int64_t done = 0; done < count; ++index) {
    const int64_t b = std::min(chunk, count - done);
    auto record = load_or_draw_chunk(cache, index, b, [&] {
      seed_chunk(seed, index);
      auto rng = chunk_rng(seed, index, 1);  // the time grid
      auto batch = sampler->simulate(b, sampler->time_grid(rng), /*keep_path=*/false);
      return ChunkRecord{{"y", batch.final.detach()}, {"log_w", batch.log_w.detach()}};
    });
    ys.push_back(record["y"].to(device));
    log_ws.push_back(record["log_w"].to(device));
    done += b;
    if (progress) progress(done);
  }
  return {torch::cat(ys), torch::cat(log_ws)};
}

}  // namespace mintjulep
