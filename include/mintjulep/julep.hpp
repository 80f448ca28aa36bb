#pragma once
// The Julep kernel and its path weights (DESIGN.md §4): Langevin steps on anchored coordinates
// that also apply exp(+-Delta A), A = H H^T, with a learned drift b, a learned potential
// correction Util and learned per-step noise levels eps_j. The prior is frozen.
#include <mintjulep/egnn.hpp>
#include <mintjulep/energy.hpp>
#include <mintjulep/mint_prior.hpp>

#include <memory>
#include <random>
#include <vector>

namespace mintjulep {

struct JulepOptions {
  int64_t steps = 100;       // T
  double eps = 0.01;         // initial noise level eps_j (length^2 per unit time)
  bool learn_eps = true;
  bool random_grid = false;  // sorted uniform random times, drawn afresh per trajectory batch
  bool use_a = true;         // the matrix exponential exp(Delta A)
  bool use_b = true;         // the drift b
  bool use_util = true;      // the potential correction Util
  // Caps each particle's deterministic displacement per step at max_step * length scale
  // (0: off). Any drift keeps the weights exact; the cap keeps a stiff score (near the frame
  // axis of the 3D prior, in Lennard-Jones cores) from throwing a particle across the box.
  double max_step = 0.5;
};

// exp(s H H^T) y for H (B, M, r), y (B, M, n), computed as y + s H phi(s H^T H) H^T y with
// phi(X) = X^-1 (exp(X) - I) taken from the 2r x 2r block exponential exp([[X, I], [0, 0]]).
torch::Tensor low_rank_expm_apply(const torch::Tensor& h, const torch::Tensor& y, double s);

struct PathBatch {
  torch::Tensor path;   // (B, T+1, M, n) positions y_0 .. y_T, detached (when kept)
  torch::Tensor final;  // (B, M, n) y_T
  torch::Tensor log_w;  // (B,) float64 log path weights
  // (B, T+1, M, n) the parameter-free part of grad_y U_{t_j}(y_j), -(1 - t) grad log q +
  // t grad V, at every point of a kept path: the kernel gradient reuses it instead of
  // evaluating the prior and the target again (the prior is frozen while the kernel trains).
  torch::Tensor fixed_score;
  std::vector<double> times;
};

class JulepSamplerImpl : public torch::nn::Module {
 public:
  // The network and the score of U_t at a batch of points (B, M, n): b and h undefined when
  // switched off; u = U_t(y) per point (B,), float64, only when asked for.
  struct PointEval {
    torch::Tensor b, h, grad_u, u;
    torch::Tensor fixed_grad;  // the prior and target part of grad_u (simulation only)
  };
  // A batch of chains at one grid time: positions and what the next step needs there.
  struct State {
    torch::Tensor y;  // (B, M, n)
    PointEval point;
    // Chains `index` (int64, (B',)) of this batch, e.g. after resampling.
    State index_select(const torch::Tensor& index) const;
  };

  JulepSamplerImpl(MintPrior prior, std::shared_ptr<const AnchoredEnergy> energy, Egnn network,
                   JulepOptions options);

  // The time grid for one batch: uniform, or sorted uniform random interior times.
  std::vector<double> time_grid(std::mt19937_64& rng) const;
  // Simulates `count` trajectories from the prior; parameters get no gradient.
  PathBatch simulate(int64_t count, const std::vector<double>& times, bool keep_path);
  // The same from given start points y0 (B, M, n), optionally with given standard normal
  // noise (T, B, M, n) instead of fresh draws.
  PathBatch simulate_from(const torch::Tensor& y0, const std::vector<double>& times, bool keep_path,
                          const torch::Tensor& noise = {});
  // sum over steps j in [first, last) (1-based) of the kernel terms of log w on a fixed path,
  // differentiable in the kernel parameters (double backward through grad_y Util). (B,)
  torch::Tensor kernel_log_weight(const torch::Tensor& path, const std::vector<double>& times,
                                  int64_t first, int64_t last);
  // Accumulates into .grad of the network parameters and log_eps the gradient of
  // sum_b c_b (kernel terms of log w_b) restricted to the grid points [first, last) of a kept
  // path (simulate with keep_path): the terms of log w split exactly over grid points, point k
  // holding -|y_{k-1} - B_k(y_k)|^2 / (4 eps_k Delta_k) and |y_{k+1} - F_{k+1}(y_k)|^2 /
  // (4 eps_{k+1} Delta_{k+1}), which need the network at (y_k, t_k) alone. So every grid point
  // is evaluated once (T+1 evaluations for the whole path, against 2 per step of
  // kernel_log_weight chunks), grad_y of the frozen prior and the target are taken from
  // batch.fixed_score, and points go through the network together, at most
  // max_configurations configurations (points x trajectories) per pass: peak memory is set by
  // that bound, whatever T and the batch. The double backward through grad_y Util is taken
  // only where Util enters (use_util, 0 < t < 1). Over the points [0, T+1) the gradient equals
  // that of sum_b c_b kernel_log_weight(path, times, 1, T+1)_b up to round-off.
  void accumulate_kernel_gradient(const torch::Tensor& path, const torch::Tensor& fixed_score,
                                  const std::vector<double>& times, const torch::Tensor& coefficient,
                                  int64_t first, int64_t last, int64_t max_configurations);
  // log w of trajectories from y0 (B, M, n) with the graph kept through every step: y_j is a
  // differentiable function of the parameters (reparameterised noise), as the reverse-KL
  // objective needs. Memory grows with T. Optional noise (T, B, M, n) as in simulate_from. (B,)
  torch::Tensor differentiable_log_weight(const torch::Tensor& y0, const std::vector<double>& times,
                                          const torch::Tensor& noise = {});

  // The state at times[0] from start points y0 (B, M, n). With `potential`, point.u holds U_t(y)
  // (for SMC's intermediate weights; U_0 = -path_log_prob, not the exact -log q).
  State start(const torch::Tensor& y0, const std::vector<double>& times, bool potential = false);
  // Advances `state` by step j (1-based, times[j-1] -> times[j]) with standard normal noise xi
  // (fresh draws when undefined) and returns the kernel terms of log w for that step,
  // log B_j(y_{j-1} | y_j) - log F_j(y_j | y_{j-1}), float64 (B,). No gradient.
  torch::Tensor advance(State& state, const std::vector<double>& times, int64_t j,
                        const torch::Tensor& xi = {}, bool potential = false);

  torch::Tensor step_eps(double t_start) const;  // eps for the step that starts at t_start
  const JulepOptions& options() const { return options_; }
  MintPrior prior() const { return prior_; }
  Egnn network() const { return network_; }
  const AnchoredEnergy& energy() const { return *energy_; }

  torch::Tensor log_eps;  // (T,) piecewise-constant table over [0, 1]

 private:
  // How much of the graph an evaluation keeps: none (simulation), the parameters (on a fixed
  // path), or the parameters and y itself (through the trajectory).
  enum class Graph { none, parameters, path };
  PointEval evaluate(const torch::Tensor& y, double t, Graph graph, bool potential = false);
  PointEval evaluate_detached(const torch::Tensor& y, double t, bool potential);
  torch::Tensor potential_value(const torch::Tensor& y, double t, const torch::Tensor& path_log_q,
                                const torch::Tensor& target_value, const torch::Tensor& util) const;
  torch::Tensor cap_displacement(const torch::Tensor& d) const;
  torch::Tensor forward_mean(const PointEval& p, const torch::Tensor& y, double dt, const torch::Tensor& eps);
  torch::Tensor backward_mean(const PointEval& p, const torch::Tensor& y, double dt, const torch::Tensor& eps);

  MintPrior prior_;
  std::shared_ptr<const AnchoredEnergy> energy_;
  Egnn network_;
  JulepOptions options_;
};
TORCH_MODULE(JulepSampler);

}  // namespace mintjulep
