#include <mintjulep/error.hpp>
#include <mintjulep/mint_training.hpp>

#include <torch/optim/adam.h>

#include <chrono>
#include <cmath>
#include <limits>

namespace mintjulep {

torch::Tensor prior_log_weights(MintPrior& prior, const AnchoredEnergy& energy, int64_t count,
                                int64_t chunk) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t done = 0; done < count; done += chunk) {
    auto y = prior->sample(std::min(chunk, count - done));
    parts.push_back(-energy.value(y, 1.0).to(torch::kFloat64) - prior->log_prob(y));
  }
  return torch::cat(parts);
}

MintTrainingResult train_mint(MintPrior& prior, const AnchoredEnergy& energy,
                              const MintTrainingOptions& options,
                              const std::function<void(const MintProgress&)>& progress) {
  check(options.steps >= 0 && options.samples >= 2, "mint training needs steps >= 0 and samples >= 2");
  check(options.learning_rate > 0, "mint learning_rate must be positive");
  check(options.beta_start > 0 && options.beta_start <= 1, "mint beta_start must be in (0, 1]");
  const auto start = std::chrono::steady_clock::now();
  torch::optim::Adam optimizer(prior->parameters(), torch::optim::AdamOptions(options.learning_rate));
  MintTrainingResult result;
  for (int64_t step = 0; step < options.steps; ++step) {
    const double fraction = options.warmup_steps > 0
                                ? std::min(1.0, static_cast<double>(step) / options.warmup_steps)
                                : 1.0;
    const double beta = std::pow(options.beta_start, 1.0 - fraction);
    auto y = prior->sample(options.samples);
    torch::Tensor energies;
    {
      torch::NoGradGuard no_grad;
      energies = energy.value(y, 1.0).to(torch::kFloat64);
    }
    // Non-finite energies (overlapping particles, overflow) are dropped from the batch.
    auto finite = torch::isfinite(energies);
    const int64_t kept = finite.sum().item<int64_t>();
    result.dropped += energies.numel() - kept;
    if (kept < 2) continue;
    if (kept < energies.numel()) {
      auto idx = finite.nonzero().squeeze(1);
      y = y.index_select(0, idx);
      energies = energies.index_select(0, idx);
    }
    auto log_q = prior->log_prob(y);
    auto log_q_detached = log_q.detach();
    auto weights = torch::softmax(-beta * energies - log_q_detached, 0);
    auto loss = -(weights * log_q).sum() + options.repulsion * prior->repulsion();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    result.steps = step + 1;
    if (progress && options.log_every > 0 &&
        (step % options.log_every == 0 || step + 1 == options.steps)) {
      MintProgress p;
      p.step = step;
      p.beta = beta;
      p.loss = loss.item<double>();
      p.batch_ess = summarize_log_weights(-energies - log_q_detached).ess;
      p.dropped = result.dropped;
      progress(p);
    }
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace mintjulep
