#include <mintjulep/error.hpp>
#include <mintjulep/mint_training.hpp>

#include "io/atomic_file.hpp"
#include "training/schedule.hpp"

#include <ATen/Context.h>
#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <mutex>
#include <sstream>

namespace mintjulep {

torch::Tensor prior_log_weights(MintPrior& prior, const AnchoredEnergy& energy, int64_t count,
                                int64_t chunk, const std::function<void(const torch::Tensor&)>& on_samples) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t done = 0; done < count; done += chunk) {
    auto y = prior->sample(std::min(chunk, count - done));
    if (on_samples) on_samples(y);
    parts.push_back(-energy.value(y, 1.0).to(torch::kFloat64) - prior->log_prob(y));
  }
  return torch::cat(parts);
}

namespace {

// Walkers of the "langevin" objective with their energies and gradients, moved by MALA.
struct WalkerPool {
  torch::Tensor y, energy, grad;  // (S, M, n), (S,) float64, (S, M, n)
  torch::Tensor age;              // (S,) MALA steps since each walker was drawn
  // MALA step size h (length^2) per walker, adapted to ~57% acceptance: a walker in a steep
  // region (just redrawn, high energy) gets the small steps it needs to move at all.
  torch::Tensor step;  // (S,) float64
  double acceptance = 0;

  void set(const torch::Tensor& index, const torch::Tensor& y_new, const AnchoredEnergy& e) {
    auto vg = e.value_and_grad(y_new, 1.0);
    y.index_copy_(0, index, y_new);
    energy.index_copy_(0, index, vg.value.to(torch::kFloat64));
    grad.index_copy_(0, index, vg.grad.to(y.scalar_type()));
  }

  // Redraws `fraction` of the walkers, and every walker with a non-finite energy, from q.
  void refresh(MintPrior& prior, const AnchoredEnergy& e, double fraction) {
    auto redraw = (torch::rand({y.size(0)}, energy.options()) < fraction) | ~torch::isfinite(energy);
    auto index = redraw.nonzero().squeeze(1);
    if (index.numel() > 0) {
      set(index, prior->sample(index.numel()).to(y.scalar_type()), e);
      age.index_fill_(0, index, 0);
      step.index_fill_(0, index, step.median().item<double>());
    }
  }

  // Metropolis-adjusted Langevin steps towards exp(-beta V(y, 1)).
  void move(const AnchoredEnergy& e, double beta, int64_t steps) {
    for (int64_t i = 0; i < steps; ++i) {
      auto h = step.view({-1, 1, 1}).to(y.scalar_type());
      auto proposal = y - h * beta * grad + (2 * h).sqrt() * torch::randn_like(y);
      auto vg = e.value_and_grad(proposal, 1.0);
      auto u_new = vg.value.to(torch::kFloat64);
      auto g_new = vg.grad.to(y.scalar_type());
      auto forward = (proposal - y + h * beta * grad).pow(2).sum({1, 2});
      auto backward = (y - proposal + h * beta * g_new).pow(2).sum({1, 2});
      auto log_alpha = -beta * (u_new - energy) - (backward - forward).to(torch::kFloat64) / (4 * step);
      auto accept = torch::isfinite(log_alpha) & (torch::rand_like(log_alpha).log() < log_alpha);
      auto mask = accept.view({-1, 1, 1});
      y = torch::where(mask, proposal, y);
      grad = torch::where(mask, g_new, grad);
      energy = torch::where(accept, u_new, energy);
      auto accepted = accept.to(torch::kFloat64);
      acceptance = accepted.mean().item<double>();
      step = step * torch::exp(0.5 * (accepted - 0.574));
    }
    age += steps;
  }
};

// "a+b+c" -> {"a", "b", "c"}.
std::vector<std::string> objective_terms(const std::string& objective) {
  std::vector<std::string> terms;
  for (size_t begin = 0; begin < objective.size();) {
    const size_t end = std::min(objective.find('+', begin), objective.size());
    terms.push_back(objective.substr(begin, end - begin));
    begin = end + 1;
  }
  return terms;
}

bool has_term(const std::string& objective, const std::string& term) {
  const auto terms = objective_terms(objective);
  return std::find(terms.begin(), terms.end(), term) != terms.end();
}

// The settings a saved training state must share with the run that resumes it. The objective
// enters as its set of terms: the loss adds them in a fixed order whatever the spelling.
torch::Tensor mint_state_fingerprint(const MintPrior& prior, const MintTrainingOptions& o) {
  const double terms = (has_term(o.objective, "snis") ? 1 : 0) + (has_term(o.objective, "reverse_kl") ? 2 : 0) +
                       (has_term(o.objective, "langevin") ? 4 : 0) + (has_term(o.objective, "em") ? 8 : 0);
  return torch::tensor(
      {static_cast<double>(o.steps), static_cast<double>(o.samples), o.learning_rate, o.final_lr_fraction,
       o.repulsion, o.beta_start, static_cast<double>(o.warmup_steps), terms, static_cast<double>(o.langevin_steps),
       o.langevin_refresh, static_cast<double>(o.langevin_burn_in), static_cast<double>(o.select_every),
       static_cast<double>(o.select_samples), static_cast<double>(static_cast<uint32_t>(o.seed)),
       static_cast<double>(static_cast<uint32_t>(o.seed >> 32)), static_cast<double>(prior->options().components),
       o.em_strength, o.em_split},
      torch::kFloat64);
}

// The default generators the training draws from: the CPU's, and the prior's device's.
std::vector<at::Generator> training_generators(const MintPrior& prior) {
  std::vector<at::Generator> generators{at::globalContext().defaultGenerator(at::kCPU)};
  const auto device = prior->logits.device();
  if (!device.is_cpu()) generators.push_back(at::globalContext().defaultGenerator(device));
  return generators;
}

// What a Mint run carries from one step to the next besides the parameters and Adam.
struct MintCarry {
  int64_t next_step = 0;
  double seconds = 0;
  std::vector<torch::Tensor> best;
};

void save_mint_state(const std::string& path, MintPrior& prior, torch::optim::Adam& optimizer,
                     const torch::Tensor& fingerprint, const WalkerPool& pool, const MintTrainingResult& result,
                     const MintCarry& carry) {
  torch::serialize::OutputArchive archive, model, adam, best, generators;
  prior->save(model);
  optimizer.save(adam);
  archive.write("prior", model);
  archive.write("optimizer", adam);
  archive.write("fingerprint", fingerprint);
  archive.write("progress",
                torch::tensor({static_cast<double>(carry.next_step), static_cast<double>(result.dropped),
                               carry.seconds, static_cast<double>(result.selected_step), result.selected_ess,
                               pool.acceptance, static_cast<double>(result.steps)},
                              torch::kFloat64));
  // Adam skips a parameter whose gradient is undefined and updates one whose gradient is zero:
  // which ones had a gradient must survive the resume for the next step to match.
  std::vector<int64_t> has_grad;
  for (const auto& p : prior->parameters()) has_grad.push_back(p.grad().defined() ? 1 : 0);
  archive.write("has_grad", torch::tensor(has_grad, torch::kLong));
  for (size_t i = 0; i < carry.best.size(); ++i) best.write(std::to_string(i), carry.best[i]);
  archive.write("best", best);
  if (pool.y.defined()) {
    archive.write("pool_y", pool.y);
    archive.write("pool_energy", pool.energy);
    archive.write("pool_grad", pool.grad);
    archive.write("pool_age", pool.age);
    archive.write("pool_step", pool.step);
  }
  auto gens = training_generators(prior);
  for (size_t i = 0; i < gens.size(); ++i) {
    std::lock_guard<std::mutex> lock(gens[i].mutex());
    generators.write(std::to_string(i), gens[i].get_state());
  }
  archive.write("generators", generators);
  std::ostringstream bytes;
  archive.save_to(bytes);
  AtomicFile file(path);  // atomic: a kill leaves the old state or the new one
  file.write(bytes.str());
  file.commit();
}

MintCarry load_mint_state(const std::string& path, MintPrior& prior, torch::optim::Adam& optimizer,
                          const torch::Tensor& fingerprint, WalkerPool& pool, MintTrainingResult& result) {
  MintCarry carry;
  torch::Tensor saved_fingerprint, progress, has_grad;
  try {
    torch::serialize::InputArchive archive, model, adam, best, generators;
    const auto device = prior->logits.device();
    archive.load_from(path, device);
    archive.read("fingerprint", saved_fingerprint);
    check(saved_fingerprint.sizes() == fingerprint.sizes() && torch::equal(saved_fingerprint.cpu(), fingerprint),
          "the Mint training state '" + path +
              "' was written with other [mint] or [prior] settings or another seed; resume with the same config, "
              "or delete the file to start over");
    archive.read("progress", progress);
    archive.read("has_grad", has_grad);
    archive.read("prior", model);
    archive.read("optimizer", adam);
    prior->load(model);
    optimizer.load(adam);
    archive.read("best", best);
    for (torch::Tensor t; best.try_read(std::to_string(carry.best.size()), t); t = torch::Tensor())
      carry.best.push_back(t);
    if (pool.y.defined()) {
      archive.read("pool_y", pool.y);
      archive.read("pool_energy", pool.energy);
      archive.read("pool_grad", pool.grad);
      archive.read("pool_age", pool.age);
      archive.read("pool_step", pool.step);
    }
    archive.read("generators", generators);
    auto gens = training_generators(prior);
    for (size_t i = 0; i < gens.size(); ++i) {
      torch::Tensor state;
      generators.read(std::to_string(i), state);
      std::lock_guard<std::mutex> lock(gens[i].mutex());
      gens[i].set_state(state.cpu());
    }
  } catch (const c10::Error& e) {
    std::string why = std::string(e.what_without_backtrace()).substr(0, 120);
    std::replace(why.begin(), why.end(), '\n', ' ');
    throw Error("cannot resume from the Mint training state '" + path + "': it is damaged or from another model (" +
                why + "); delete it to start over");
  }
  auto parameters = prior->parameters();
  has_grad = has_grad.cpu();
  check(has_grad.numel() == static_cast<int64_t>(parameters.size()),
        "cannot resume from the Mint training state '" + path + "': it is from another model; delete it to start over");
  for (size_t i = 0; i < parameters.size(); ++i)
    if (has_grad[static_cast<int64_t>(i)].item<int64_t>() != 0) parameters[i].mutable_grad() = torch::zeros_like(parameters[i]);
  progress = progress.cpu();
  carry.next_step = static_cast<int64_t>(progress[0].item<double>());
  result.dropped = static_cast<int64_t>(progress[1].item<double>());
  carry.seconds = progress[2].item<double>();
  result.selected_step = static_cast<int64_t>(progress[3].item<double>());
  result.selected_ess = progress[4].item<double>();
  pool.acceptance = progress[5].item<double>();
  result.steps = static_cast<int64_t>(progress[6].item<double>());
  return carry;
}

}  // namespace

void check_mint_objective(const std::string& objective) {
  const auto terms = objective_terms(objective);
  check(!terms.empty(), "objective must be snis, reverse_kl, langevin or a '+'-separated sum of them, or em; not empty");
  for (const auto& term : terms)
    check(term == "snis" || term == "reverse_kl" || term == "langevin" || (term == "em" && terms.size() == 1),
          "objective must be snis, reverse_kl, langevin or a '+'-separated sum of them, or em alone; '" +
              objective + "' has the unknown term '" + term + "'");
}

MintTrainingResult train_mint(MintPrior& prior, const AnchoredEnergy& energy,
                              const MintTrainingOptions& options,
                              const std::function<void(const MintProgress&)>& progress,
                              const std::function<void(int64_t)>& on_step) {
  check(options.steps >= 0 && options.samples >= 2, "mint training needs steps >= 0 and samples >= 2");
  check(options.learning_rate > 0, "mint learning_rate must be positive");
  check(options.beta_start > 0 && options.beta_start <= 1, "mint beta_start must be in (0, 1]");
  check(options.checkpoint_every >= 1, "mint checkpoint_every must be >= 1");
  const auto start = std::chrono::steady_clock::now();
  torch::optim::Adam optimizer(prior->parameters(), torch::optim::AdamOptions(options.learning_rate));
  MintTrainingResult result;
  check_mint_objective(options.objective);
  check(options.langevin_steps >= 1 && options.langevin_refresh >= 0 && options.langevin_refresh <= 1,
        "mint langevin_steps must be >= 1 and langevin_refresh in [0, 1]");
  const bool use_snis = has_term(options.objective, "snis");
  const bool use_reverse_kl = has_term(options.objective, "reverse_kl");
  const bool use_langevin = has_term(options.objective, "langevin");
  const bool use_em = has_term(options.objective, "em");
  check(!use_em || prior->internal(), "[mint] objective = \"em\" is for the internal prior family (molecules); use snis");
  check(options.em_strength >= 0, "[mint] em_strength must be >= 0");
  const bool relabel = energy.energy().same_type_particles_interchangeable();
  WalkerPool pool;
  if (use_langevin) {
    torch::NoGradGuard no_grad;
    pool.y = prior->sample(options.samples);
    pool.energy = torch::empty({options.samples}, pool.y.options().dtype(torch::kFloat64));
    pool.grad = torch::empty_like(pool.y);
    pool.set(torch::arange(options.samples, pool.y.options().dtype(torch::kLong)), pool.y.clone(), energy);
    // The first pool is the prior itself: no burn-in, so that the first step already fits.
    pool.age = torch::full({options.samples}, options.langevin_burn_in, pool.y.options().dtype(torch::kLong));
    const double length = energy.energy().length_scale();
    pool.step = torch::full({options.samples}, 1e-4 * length * length, pool.energy.options());
  }
  const int64_t K = prior->options().components;
  const int64_t per_component = std::max<int64_t>(1, options.samples / K);
  auto component_ids = torch::arange(K, torch::TensorOptions().dtype(torch::kLong).device(prior->logits.device()))
                           .repeat_interleave(per_component);
  // Best parameters so far by ESS on fresh draws (select_every > 0).
  MintCarry carry;
  auto& best = carry.best;
  auto select = [&](int64_t step) {
    torch::NoGradGuard no_grad;
    const double ess = summarize_log_weights(prior_log_weights(prior, energy, options.select_samples)).ess;
    if (!best.empty() && !(ess > result.selected_ess)) return;
    best.clear();
    for (const auto& p : prior->parameters()) best.push_back(p.detach().clone());
    result.selected_ess = ess;
    result.selected_step = step;
  };
  const auto fingerprint = mint_state_fingerprint(prior, options);
  const bool resume = !options.state_path.empty() && std::filesystem::exists(options.state_path);
  // Everything above drew the same numbers as in the interrupted run; the saved state replaces
  // what it produced (pool, parameters) and the generators' positions.
  if (resume) {
    carry = load_mint_state(options.state_path, prior, optimizer, fingerprint, pool, result);
    result.resumed_from = carry.next_step;
    if (on_step) on_step(carry.next_step);
  } else if (options.select_every > 0) {
    select(0);
  }
  const auto elapsed = [&] {
    return carry.seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // The state after `step`: saved every checkpoint_every steps and after the last.
  const auto save_due = [&](int64_t step) {
    if (options.state_path.empty() || ((step + 1) % options.checkpoint_every != 0 && step + 1 != options.steps)) return;
    const MintCarry saved{step + 1, elapsed(), best};
    save_mint_state(options.state_path, prior, optimizer, fingerprint, pool, result, saved);
  };
  for (int64_t step = carry.next_step; step < options.steps; ++step) {
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
    if (use_langevin) {
      {
        torch::NoGradGuard no_grad;
        pool.refresh(prior, energy, options.langevin_refresh);
        pool.move(energy, beta, options.langevin_steps);
      }
      auto finite = torch::isfinite(pool.energy);
      result.dropped += (~finite).sum().item<int64_t>();
      // Redrawn walkers join the fit only after a burn-in: fitted while still relaxing from
      // q, they would keep q's broad components alive (q would cover its own fresh draws).
      auto walkers = pool.y.index_select(0, (finite & (pool.age >= options.langevin_burn_in)).nonzero().squeeze(1));
      if (walkers.size(0) >= 1) {
        // For interchangeable particles every relabelling of a walker is as likely.
        if (relabel)
          walkers = energy.to_anchored(
              relabel_identical_particles(energy.to_full(walkers), energy.energy().particle_types()));
        loss = loss - prior->log_prob(walkers).mean();
      }
    }
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
    if (use_em) {
      torch::NoGradGuard no_grad;
      auto y = prior->sample(options.samples);
      auto energies = energy.value(y, 1.0).to(torch::kFloat64);
      result.dropped += (~torch::isfinite(energies)).sum().item<int64_t>();
      auto log_q = prior->log_prob(y);
      batch_log_w = -energies - log_q;
      auto log_w = (-beta * energies - log_q).nan_to_num(-INFINITY, INFINITY, -INFINITY);
      if (torch::isfinite(log_w).sum().item<int64_t>() >= 2) {
        loss = loss - (torch::softmax(log_w, 0) * log_q).nansum();
        // No split after the last step: its halves would go unfitted.
        prior->em_step(y, log_w, options.em_strength, log_q, step + 1 < options.steps ? options.em_split : 0.0);
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
      if (kept < 2) {
        // No step: only the checkpoint, which must cover the draws just made.
        save_due(step);
        continue;
      }
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
    if (loss.requires_grad()) {
      loss.backward();
      optimizer.step();
    }
    result.steps = step + 1;
    if (options.select_every > 0 && (step + 1) % options.select_every == 0) select(step + 1);
    if (progress && progress_due(step, options.log_every, options.steps)) {
      MintProgress p;
      p.step = step;
      p.beta = beta;
      p.loss = loss.item<double>();
      if (!batch_log_w.defined()) batch_log_w = prior_log_weights(prior, energy, options.samples);
      p.batch_ess = summarize_log_weights(batch_log_w).ess;
      p.dropped = result.dropped;
      if (use_langevin) p.acceptance = pool.acceptance;
      progress(p);
    }
    save_due(step);  // after the progress line, whose ESS may draw fresh samples
    if (on_step) on_step(step + 1);
  }
  if (!best.empty()) {
    torch::NoGradGuard no_grad;
    auto parameters = prior->parameters();
    for (size_t i = 0; i < best.size(); ++i) parameters[i].copy_(best[i]);
  }
  result.seconds = elapsed();
  return result;
}

torch::Tensor relabel_identical_particles(const torch::Tensor& x, const std::vector<int64_t>& types) {
  check(static_cast<int64_t>(types.size()) == x.size(1), "relabel: one type per particle needed");
  auto index_options = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  auto type = torch::tensor(types, index_options);
  // Sorting type + u (u uniform in [0, 0.5)) orders the particles by type and randomly within
  // a type; sorting the types alone (stable) gives the slots of each type.
  auto order = std::get<1>(torch::sort(type.to(torch::kFloat64).to(x.device()) +
                                       0.5 * torch::rand({x.size(0), x.size(1)}, x.options().dtype(torch::kFloat64))));
  auto slots = std::get<1>(torch::sort(type, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto picked = x.gather(1, order.unsqueeze(-1).expand({-1, -1, x.size(2)}));
  return torch::zeros_like(x).index_copy_(1, slots, picked);
}

MintTrainingResult fit_mint_to_samples(MintPrior& prior, const AnchoredEnergy& energy,
                                       const torch::Tensor& x, const MintTrainingOptions& options,
                                       bool relabel,
                                       const std::function<void(const MintProgress&)>& progress,
                                       const std::function<void(int64_t)>& on_step) {
  energy.energy().check_positions(x, "reference samples");
  check(x.size(0) >= 2, "fitting the prior needs at least 2 reference samples");
  check(!relabel || energy.energy().same_type_particles_interchangeable(),
        "relabelling needs interchangeable particles; system '" + energy.energy().name() +
            "' tells same-type particles apart (a molecule): fit without relabelling");
  check(options.steps >= 0 && options.samples >= 2, "mint fit needs steps >= 0 and samples >= 2");
  const auto start = std::chrono::steady_clock::now();
  const auto types = energy.energy().particle_types();
  auto data = x.to(prior->logits.device(), torch::kFloat64);
  torch::optim::Adam optimizer(prior->parameters(), torch::optim::AdamOptions(options.learning_rate));
  MintTrainingResult result;
  for (int64_t step = 0; step < options.steps; ++step) {
    set_learning_rate(optimizer, cosine_schedule(options.learning_rate, options.final_lr_fraction,
                                                 step, options.steps));
    auto pick = torch::randint(data.size(0), {options.samples},
                               torch::TensorOptions().dtype(torch::kLong).device(data.device()));
    auto batch = data.index_select(0, pick);
    if (relabel) batch = relabel_identical_particles(batch, types);
    auto loss = -prior->log_prob(energy.to_anchored(batch)).mean() + options.repulsion * prior->repulsion();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    result.steps = step + 1;
    if (progress && progress_due(step, options.log_every, options.steps)) {
      MintProgress p;
      p.step = step;
      p.loss = loss.item<double>();
      p.batch_ess = summarize_log_weights(prior_log_weights(prior, energy, options.samples)).ess;
      progress(p);
    }
    if (on_step) on_step(step + 1);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace mintjulep
