#pragma once
// Exact annealing on the path U_t = (1 - t) U_0 + t V(., t), U_0 = -path_log_prob (DESIGN.md
// §4b): annealed importance sampling with Metropolis-adjusted Langevin (MALA) moves, and
// sequential Monte Carlo (ESS-triggered systematic resampling) with either the MALA increments
// or the Julep kernel's increments of §4 (the unadjusted AIS baseline is the Julep kernel with
// A = b = Util = 0).
//
// MALA-AIS weights, with y_0 ~ q exactly and pi_j = exp(-U_{t_j}) for j >= 1:
//   log w = [-U_{t_1}(y_0) - log q(y_0)] + sum_{j=2..T} [U_{t_{j-1}}(y_{j-1}) - U_{t_j}(y_{j-1})]
// where y_j is y_{j-1} after `moves` MALA moves that leave pi_j invariant (U_{t_T} = V(., 1)).
// The first increment uses the exact log q because exp(-U_0) is only a softened q. E[w] = Z.
// Step sizes: one per temperature, fixed before a batch of weighted chains starts, tuned on a
// pilot batch whose weights are discarded and refined after each chunk from that chunk's
// acceptance: a weighted chain's step sizes never depend on any weighted chain's moves.
#include <mintjulep/chunks.hpp>
#include <mintjulep/energy.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/mint_prior.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mintjulep {

struct AnnealOptions {
  // "ula" / "julep": AIS with the given Julep kernel (ula: the untrained one, A = b = Util = 0);
  // "mala": AIS with MALA moves; "smc-ula", "smc-julep", "smc-mala": the same increments with
  // resampling.
  std::string method = "mala";
  int64_t steps = 100;               // T for the MALA methods (the Julep kernel has its own T)
  int64_t moves = 1;                 // MALA moves per temperature
  // Leapfrog steps per move: 1 is MALA; L > 1 is Hamiltonian Monte Carlo with L leapfrog steps
  // of size sqrt(2 h) (the same h, so that L = 1 would be MALA), L gradients per move.
  int64_t leapfrog = 1;
  // The MALA/HMC temperatures t_j = (j / T)^schedule_power: 1 is uniform; > 1 puts more of them
  // near t = 0 (the prior end), < 1 near t = 1 (the target end). Any schedule is exact.
  double schedule_power = 1.0;
  // Independence Metropolis moves per temperature, after the MALA/HMC moves: a proposal drawn
  // from the prior itself, accepted with min(1, [e^-U_t q](y') / [e^-U_t q](y)) (DESIGN.md §4b).
  // They relocate a chain across basins in one step, which local moves on a molecule's stiff
  // bonds cannot; each costs a prior draw and a prior density at y and y'.
  int64_t independence = 0;
  // MALA/HMC path: false = U_t = -(1 - t) log q + t V(., t) with the system's soft-core V (DESIGN.md
  // §4, the Julep kernel's path); true = the geometric path U_t = -(1 - t) log q + t U, which does
  // not open overlaps at intermediate t (a prior that already keeps atoms apart needs no softening).
  bool geometric_path = false;
  double step_size = 0.01;           // initial MALA step h: y' = y - h grad U + sqrt(2 h) xi
  double target_acceptance = 0.57;
  double max_step_size = 0.25;       // cap on h, in units of length_scale^2
  int64_t pilot = 500;               // pilot chains that tune the step sizes (0: no pilot)
  double resample_threshold = 0.5;   // SMC resamples when the normalised ESS falls below this
  int64_t chunk = 10000;             // chains run at once (the SMC population)
};

// The methods anneal() accepts.
const std::vector<std::string>& anneal_methods();
bool anneal_method_uses_mala(const std::string& method);
bool anneal_method_resamples(const std::string& method);
// AnnealOptions::geometric_path from a path's name: "soft" -> false, "geometric" -> true; Error
// naming the two otherwise.
bool anneal_path_is_geometric(const std::string& path);
// Throws Error unless the options are valid.
void check_anneal_options(const AnnealOptions& options);

struct AnnealResult {
  torch::Tensor y;      // (count, M, n) final samples
  // (count,) float64 final log weights. AIS: the path weights. SMC: the weights since the last
  // resampling plus the log mean weights at that chunk's resamplings, so that in both cases
  // log mean exp(log_w) = log Z_hat (SMC: the mean of the chunks' Z_hat).
  torch::Tensor log_w;
  double log_z = 0;
  double ess = 0;       // normalised ESS of log_w: the path ESS for AIS, SMC's final ESS for SMC
  int64_t num_non_finite = 0;            // final log w not finite (weight 0)
  // Trajectories whose log w became NaN (an energy, gradient or density that could not be
  // evaluated) or +inf (overflow), at the end or, for SMC, at a resampling step; each weighs 0.
  int64_t num_nan = 0, num_overflow = 0;
  int64_t resampling_events = 0;          // summed over chunks
  int64_t steps = 0;                      // T
  std::vector<double> acceptance;         // MALA: per temperature j = 1..T, mean over chains and moves
  double independence_acceptance = 0;    // mean acceptance of the independence moves (if any)
  std::vector<double> step_sizes;         // MALA: the step size used at each temperature (last chunk)
  double seconds = 0;
};

// Runs `count` chains in chunks. MALA methods use prior and energy; ula/julep methods use
// `kernel` (its prior, energy, T, eps), which must be given (for ula: A = b = Util = 0).
// progress(done, count) after each chunk. Everything stays on the prior's device. Each chunk
// (an SMC population of its own) draws from streams seeded from (seed, chunk index); MALA's
// step sizes carry from one chunk to the next and are kept with it, so chunks taken from
// `cache` (and every finished one saved there) give the result of a run that drew them all.
AnnealResult anneal(const AnnealOptions& options, MintPrior prior, const AnchoredEnergy& energy,
                    JulepSampler kernel, int64_t count, uint64_t seed,
                    const std::function<void(int64_t, int64_t)>& progress = {}, const ChunkCache& cache = {});

// Reverse annealed importance sampling, the upper half of bidirectional Monte Carlo: chains
// start at exact samples y of exp(-U) / Z (e.g. a long MD run, anchored) and follow the MALA/HMC
// path backwards, t_T = 1 -> t_1, ending on the prior's exact log q:
//   log w = sum_{j=T-1..1} [U_{t_{j+1}}(y_j) - U_{t_j}(y_j)] + U_{t_1}(y_0) + log q(y_0)
// with y_j the chain after `moves` moves that leave exp(-U_{t_j}) invariant. E[w] = 1 / Z, so
// -log mean w over-estimates log Z on average (Jensen) as forward AIS under-estimates it: the two
// bracket log Z. Step sizes come from a forward pilot (options.pilot chains) and then stay fixed.
// Only "mala" (no resampling). Returns log_w = the reverse log weights, log_z = -log mean w,
// ess = their normalised ESS, y = where the chains ended (near the prior).
AnnealResult reverse_anneal(const AnnealOptions& options, MintPrior prior, const AnchoredEnergy& energy,
                            const torch::Tensor& exact, uint64_t seed,
                            const std::function<void(int64_t, int64_t)>& progress = {});

// Systematic resampling: `count` indices (int64, on log_w's device; count < 0: as many as
// log_w has) drawn with probabilities proportional to exp(log_w), using one uniform u in
// [0, 1). Non-finite log w count as w = 0; Error when no weight is finite.
torch::Tensor systematic_resample(const torch::Tensor& log_w, double u, int64_t count = -1);

}  // namespace mintjulep
