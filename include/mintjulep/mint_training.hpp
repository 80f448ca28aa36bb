#pragma once
// Stage 1: fitting the Mint prior to exp(-U) (DESIGN.md §3).
#include <mintjulep/energy.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/mint_prior.hpp>

#include <functional>

namespace mintjulep {

struct MintTrainingOptions {
  int64_t steps = 2000;
  int64_t samples = 1024;        // S, samples per step
  double learning_rate = 1e-2;   // Adam, cosine-decayed to learning_rate * final_lr_fraction
  double final_lr_fraction = 0.05;
  double repulsion = 0.01;       // lambda_rep
  double beta_start = 0.1;       // inverse temperature at step 0, raised geometrically ...
  int64_t warmup_steps = 500;    // ... to 1 over this many steps
  int64_t log_every = 100;       // progress callback period (0: never)
  // A '+'-separated sum of: "snis": self-normalised forward KL (DESIGN.md §3);
  // "reverse_kl": per-component reparameterised reverse KL, sum_k pi_k E_{q_k}[log q + beta V];
  // "langevin": maximum likelihood on a persistent pool of `samples` walkers that MALA moves
  // towards exp(-beta V) (a training heuristic: the prior's density stays exact, and the
  // walkers see the shape of each basin far better than weights of prior draws do).
  // "em" (alone; internal family): the snis objective maximised in closed form, one
  // expectation-maximisation step per Mint step on `samples` fresh draws (MintPrior::em_step);
  // no learning rate.
  std::string objective = "snis";
  double em_split = 0;       // "em": components under this fraction of the largest weight are
                             // re-seeded by splitting the heaviest (MintPrior::em_step); 0: none
  double em_strength = 100;  // "em": effective samples the current components count as
  int64_t langevin_steps = 10;     // MALA steps of the pool per Mint step
  double langevin_refresh = 0.05;  // fraction of the pool redrawn from the prior per Mint step
  int64_t langevin_burn_in = 50;   // MALA steps a redrawn walker makes before it is fitted
  // Every select_every steps (0: never) the prior's ESS is measured on select_samples fresh
  // draws, and training ends with the parameters that measured best (the noisy stochastic
  // objectives make the last step a poor pick). The reported ESS is always re-measured on
  // fresh draws afterwards, so the selection does not bias it.
  int64_t select_every = 0;
  int64_t select_samples = 20000;
  // Resumable training: when set, the whole training state (parameters, Adam moments, the
  // random generators' states, step, langevin walker pool, best-so-far snapshot, counters) is
  // written atomically to this file every checkpoint_every steps and after the last, and a run
  // that finds the file continues from it, drawing what the uninterrupted run would have drawn.
  std::string state_path;
  int64_t checkpoint_every = 50;
  uint64_t seed = 0;  // the run's seed: only recorded in the state, so another seed cannot resume it
};

// Throws Error unless `objective` is a '+'-separated sum of snis, reverse_kl and langevin.
void check_mint_objective(const std::string& objective);

struct MintProgress {
  int64_t step = 0;
  double acceptance = -1;  // MALA acceptance of the langevin pool (-1: no pool)
  double beta = 1;
  double loss = 0;
  double batch_ess = 0;  // ESS of this step's weights at beta = 1
  int64_t dropped = 0;   // non-finite energies dropped so far
};

struct MintTrainingResult {
  int64_t steps = 0;
  int64_t selected_step = -1;  // the step whose parameters were kept (-1: the last)
  double selected_ess = 0;     // their ESS on select_samples draws
  int64_t dropped = 0;  // non-finite energies dropped over the whole run
  double seconds = 0;   // including the time before a resume
  int64_t resumed_from = -1;  // the step a saved training state resumed at (-1: not resumed)
};

// Minimises -sum_s wbar_s log q(y_s) + lambda_rep * repulsion with Adam, wbar the
// self-normalised weights of exp(-beta V(y, 1)) / q(y) on S fresh samples per step.
// progress: every log_every steps; on_step: with the number of steps done, after every step
// (when resumed from options.state_path, first with the step it resumes at).
MintTrainingResult train_mint(MintPrior& prior, const AnchoredEnergy& energy,
                              const MintTrainingOptions& options,
                              const std::function<void(const MintProgress&)>& progress = {},
                              const std::function<void(int64_t)>& on_step = {});

// Maximum-likelihood fit of the prior to reference configurations x (S, N, n), e.g. a long MD
// run: Adam on -mean log q(y) over minibatches of options.samples, plus the repulsion; beta and
// the objective are not used. A diagnostic of the prior family (how high its ESS can get for
// this system), not part of the data-free pipeline. With `relabel`, every minibatch permutes
// identical particles at random per configuration: for a permutation-invariant energy a
// relabelled sample is a sample too, so the fit sees every labelling of each mode.
MintTrainingResult fit_mint_to_samples(MintPrior& prior, const AnchoredEnergy& energy,
                                       const torch::Tensor& x, const MintTrainingOptions& options,
                                       bool relabel,
                                       const std::function<void(const MintProgress&)>& progress = {},
                                       const std::function<void(int64_t)>& on_step = {});

// x (B, N, n) with the particles of each type permuted among themselves, independently per row.
torch::Tensor relabel_identical_particles(const torch::Tensor& x, const std::vector<int64_t>& types);

// log w = -V(y, 1) - log q(y) on `count` fresh prior samples, evaluated in chunks; float64.
// on_samples, when given, sees each chunk of samples y (in order).
torch::Tensor prior_log_weights(MintPrior& prior, const AnchoredEnergy& energy, int64_t count,
                                int64_t chunk = 4096,
                                const std::function<void(const torch::Tensor&)>& on_samples = {});

}  // namespace mintjulep
