// Weighted samples of a model: the trained Julep kernel, fresh prior draws, or an annealing
// method, with their energies and importance-sampling summary.
#include <mintjulep/chunks.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/julep_training.hpp>
#include <mintjulep/mint_training.hpp>
#include <mintjulep/model.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "io/chunk_folder.hpp"
#include "model/run_model.hpp"

namespace mintjulep {

namespace {

// The model's [anneal] options with the command's overrides.
AnnealOptions anneal_options(const Model& model, const SamplingOptions& opt) {
  AnnealOptions anneal = model.config.anneal;
  anneal.method = opt.method;
  if (opt.steps > 0) anneal.steps = opt.steps;
  if (opt.moves > 0) anneal.moves = opt.moves;
  if (opt.leapfrog > 0) anneal.leapfrog = opt.leapfrog;
  if (opt.schedule_power > 0) anneal.schedule_power = opt.schedule_power;
  if (opt.independence >= 0) anneal.independence = opt.independence;
  if (opt.pilot >= 0) anneal.pilot = opt.pilot;
  if (!opt.path.empty()) anneal.geometric_path = anneal_path_is_geometric(opt.path);
  if (opt.chunk_given) anneal.chunk = opt.chunk;
  check_anneal_options(anneal);
  return anneal;
}

}  // namespace

AnnealResult reverse_sample(Model& model, const SamplingOptions& opt, const torch::Tensor& positions) {
  check(opt.method == "mala", fmt::format("reverse annealing needs --method mala, not '{}'",
                                          opt.method.empty() ? "the trained kernel" : opt.method));
  check(positions.dim() == 3 && positions.size(1) == model.energy->num_free() + 1 &&
            positions.size(2) == model.energy->dim(),
        fmt::format("reverse annealing needs configurations of shape (B, {}, {}) for {}", model.energy->num_free() + 1,
                    model.energy->dim(), model.system->name()));
  const int64_t available = positions.size(0);
  check(opt.count >= 1 && opt.count <= available,
        fmt::format("--num-samples {} for reverse annealing, but the file holds {} configurations; ask for at most {}",
                    opt.count, available, available));
  model.system->check_positions(positions, "reverse annealing start");
  // Evenly spaced over the file (an md trajectory's frames are correlated in time).
  auto index = (torch::arange(opt.count, torch::kFloat64) * (static_cast<double>(available) / opt.count))
                   .floor()
                   .to(torch::kLong);
  auto y = model.energy->to_anchored(positions.index_select(0, index).to(torch::kFloat64));
  const AnnealOptions anneal = anneal_options(model, opt);
  ProgressMeter meter(progress_sink(model), "reverse anneal mala", "chains", opt.count);
  auto r = reverse_anneal(anneal, model.prior, *model.energy, y.to(model.prior->logits.device()), opt.seed,
                          [&](int64_t done, int64_t) { meter.update(done); });
  r.y = model.energy->to_full(r.y).to(torch::kCPU, torch::kFloat64);
  r.log_w = r.log_w.to(torch::kCPU);
  return r;
}

Samples sample(Model& model, const SamplingOptions& opt) {
  check(opt.count >= 1, "--num-samples must be >= 1");
  check(opt.chunk >= 1, "--chunk must be >= 1");
  check(opt.method.empty() || opt.method == "prior" ||
            std::find(anneal_methods().begin(), anneal_methods().end(), opt.method) != anneal_methods().end(),
        fmt::format("--method must be prior or an annealing method, got '{}'", opt.method));
  const auto start = std::chrono::steady_clock::now();
  torch::manual_seed(opt.seed);
  ChunkCache cache;
  if (!opt.partial_folder.empty()) {
    ChunkFolder folder(opt.partial_folder, opt.partial_key);
    if (folder.discarded())
      model.log(fmt::format("sample: deleted the finished chunks in {}: another command drew them\n",
                            opt.partial_folder));
    if (folder.kept() > 0)
      model.log(fmt::format("sample: resuming, {} finished chunks are taken from {}\n", folder.kept(),
                            opt.partial_folder));
    cache = folder.cache(model.prior->logits.device());
  }
  torch::Tensor y, log_w;
  int64_t run_nan = -1, run_overflow = -1;  // annealing: counted during the run (SMC resamplings)
  if (opt.method == "prior") {
    // Fresh prior draws, log w = -U - log q: the prior ESS on any number of samples. Each chunk
    // draws from its own seed, so kept chunks and drawn ones make the same samples.
    std::vector<torch::Tensor> ys, log_ws;
    ProgressMeter meter(progress_sink(model), "sample prior", "samples", opt.count);
    const auto device = model.prior->logits.device();
    int64_t index = 0;
    for (int64_t done = 0; done < opt.count; ++index) {
      const int64_t b = std::min(opt.chunk, opt.count - done);
      auto record = load_or_draw_chunk(cache, index, b, [&] {
        seed_chunk(opt.seed, index);
        torch::Tensor drawn;  // one chunk of b is one batch of prior_log_weights
        auto lw = prior_log_weights(model.prior, *model.energy, b, b, [&](const torch::Tensor& d) { drawn = d; });
        return ChunkRecord{{"y", drawn}, {"log_w", lw}};
      });
      ys.push_back(record["y"].to(device));
      log_ws.push_back(record["log_w"].to(device));
      done += b;
      meter.update(done);
      if (opt.progress) opt.progress(done, opt.count);
    }
    y = torch::cat(ys);
    log_w = torch::cat(log_ws);
  } else if (opt.method.empty()) {
    ProgressMeter meter(progress_sink(model), "sample julep", "samples", opt.count);
    auto batch = sample_julep(
        model.sampler, opt.count, opt.chunk, opt.seed,
        [&](int64_t done) {
          meter.update(done);
          if (opt.progress) opt.progress(done, opt.count);
        },
        cache);
    y = batch.y;
    log_w = batch.log_w;
  } else {
    const AnnealOptions anneal = anneal_options(model, opt);
    AnnealResult result;
    run_annealing(model, anneal, opt.count, opt.seed, &result, cache);
    y = result.y;
    log_w = result.log_w;
    run_nan = result.num_nan;
    run_overflow = result.num_overflow;
  }
  std::vector<torch::Tensor> energies;
  for (int64_t i = 0; i < opt.count; i += opt.chunk) {
    torch::NoGradGuard no_grad;
    energies.push_back(model.energy->value(y.narrow(0, i, std::min(opt.chunk, opt.count - i)), 1.0)
                           .to(torch::kCPU, torch::kFloat64));
  }
  Samples s;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto summary = summarize_log_weights(log_w);
  s.positions = model.energy->to_full(y).to(torch::kCPU, torch::kFloat64);
  s.log_w = log_w.to(torch::kCPU);
  s.energies = torch::cat(energies);
  s.ess = summary.ess;
  s.log_z = summary.log_z;
  s.num_non_finite = summary.num_samples - summary.num_finite;
  s.num_nan = std::max(summary.num_nan, run_nan);
  s.num_overflow = std::max(summary.num_overflow, run_overflow);
  s.num_zero = summary.num_zero;
  s.dropped = describe_dropped_weights(summary, s.num_nan, s.num_overflow);
  s.smc = !opt.method.empty() && opt.method != "prior" && anneal_method_resamples(opt.method);
  return s;
}

}  // namespace mintjulep
