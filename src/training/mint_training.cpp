#include <mintjulep/error.hpp>
#include <mintjulep/mint_training.hpp>

#include "training/schedule.hpp"

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
  check(options.objective == "snis" || options.objective == "reverse_kl" ||
            options.objective == "snis+reverse_kl",
        "mint objective must be 'snis', 'reverse_kl' or 'snis+reverse_kl', got '" +
            options.objective + "'");
  const bool use_snis = options.objective != "reverse_kl";
  const bool use_reverse_kl = options.objective != "snis";
  const int64_t K = prior->options().components;
  const int64_t per_component = std::max<int64_t>(1, options.samples / K);
  auto component_ids = torch::arange(K, torch::TensorOptions().dtype(torch::kLong).device(prior->logits.device()))
                           .repeat_interleave(per_component);
  for (int64_t step = 0; step < options.steps; ++step) {
    const double fraction = options.warmup_steps > 0
                                ? std::min(1.0, static_cast<double>(step) / options.warmup_steps)
                                : 1.0;
    const double beta = std::pow(options.beta_start, 1.0 - fraction);
    // Cosine decay of the learning rate to final_lr_fraction of its start: the noisy
    // self-normalised gradients need small steps to settle.
    set_learning_rate(optimizer, cosine_schedule(options.learning_rate, options.final_lr_fraction,
                                                 step, options.steps));
    auto loss = options.repulsion * prior->repulsion();
    torch::Tensor batch_log_w;  // this step's log weights at beta = 1, for the progress line
    if (use_reverse_kl) {
      // Every component gets samples/K reparameterised draws; pi_k enters as a weight.
      auto y = prior->sample_components(component_ids);
      auto f = prior->log_prob(y) + beta * energy.value(y, 1.0).to(torch::kFloat64);
      if (torch::isfinite(f).all().item<bool>()) {
        loss = loss + (prior->weights() * f.view({K, -1}).mean(1)).sum();
      } else {
        result.dropped += (~torch::isfinite(f)).sum().item<int64_t>();
      }
    }
    if (use_snis) {
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
      auto weights = torch::softmax(-beta * energies - log_q.detach(), 0);
      loss = loss - (weights * log_q).sum();
      batch_log_w = -energies - log_q.detach();
    }
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
      if (!batch_log_w.defined()) batch_log_w = prior_log_weights(prior, energy, options.samples);
      p.batch_ess = summarize_log_weights(batch_log_w).ess;
      p.dropped = result.dropped;
      progress(p);
    }
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace mintjulep
