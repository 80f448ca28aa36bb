#pragma once
// The Mint prior (DESIGN.md §3, §3b): a mixture of K components placed in the frame of two
// frame particles, with a uniformly random frame orientation and averaged reflections, so
// that it is exactly O(n)-invariant. Two component families:
//   "independent" (§3): a product of per-particle projected-normal x log-normal densities
//     (the paper's family);
//   "gaussian" (§3b): a full Gaussian in the frame coordinates z(y) (log r_1, [a_2, log b_2,]
//     the other particles' frame coordinates), which can represent correlations inside a
//     basin (a harmonic superposition when initialised from Hessians at minima);
//   "isotropic" (§5, the PIS/DDS baselines): every coordinate of y independent N(0, scale^2),
//     one component, no frame (already O(n)-invariant).
// Lives on anchored coordinates y (B, M, n), M = N - 1. All in float64.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <mintjulep/internal_coordinates.hpp>

#include <array>
#include <string>
#include <utility>
#include <vector>

namespace mintjulep {

struct MintPriorOptions {
  // "independent" (§3), "gaussian" (§3b), "internal" (§3c: molecules; needs anchor and bonds)
  // or "isotropic" (the baselines' isotropic Gaussian; components must be 1).
  std::string family = "independent";
  int64_t num_free = 0;     // M = N - 1 particles besides the anchor
  int64_t dim = 3;          // n = 2 or 3
  int64_t components = 16;  // K
  bool invariant = true;    // false: the fixed-orientation mixture (an ablation)
  std::array<int64_t, 2> frame = {0, 1};  // rows of y that define the frame
  double radius = 1.0;      // initial median distance to the anchor
  double radius_spread = 0.3;  // initial log-radius means are log(radius) + spread * N(0, 1)
  double sigma = 0.2;       // initial log-normal scale
  double kappa = 10.0;      // initial concentration
  // Isotropic family: the initial standard deviation of every coordinate; <= 0: radius / sqrt(n),
  // so that the typical distance to the anchor is about `radius`.
  double scale = 0.0;
  // In 3D the exact density has an integrable 1/b_2 singularity on the line through the anchor
  // and the first frame particle; path_log_prob() softens it to 1/sqrt(b_2^2 + delta^2),
  // delta = path_softening * radius, so that the annealing path has a bounded score.
  double path_softening = 0.1;
  // "random": random directions and radii; "reference": each component centred on a local
  // energy minimum found from the system's reference structure (e.g. a molecule's PDB) plus
  // init_noise (length units) of independent noise per component; "minima": each component
  // centred on the local minimum reached from its own random compact start (L-BFGS on the
  // soft-core end of the path, then on the target).
  // "harmonic" (gaussian family): components on distinct local minima found from random
  // starts, covariance = inverse Hessian of U in the frame coordinates, weights from the
  // harmonic free energies (see harmonic_prior.hpp).
  std::string init = "random";
  double init_noise = 0.0;
  // Internal family: the anchor's particle index and the bond graph (particle index pairs).
  int64_t anchor = -1;
  std::vector<std::array<int64_t, 2>> bonds;
  // Rotors: particle indices of each group of three interchangeable terminal atoms turning
  // about one bond (the hydrogens of a methyl group; see terminal_rotors()), for rotor_sd.
  std::vector<std::vector<int64_t>> rotors;
  // A group of relabellings g of the N particles (each a permutation of 0..N-1; identity
  // included) under which U is invariant: log q is averaged over them, q(y) = 1/|G| sum_g
  // q(g y), and samples are relabelled at random. Still exact and normalised (each g is a linear
  // map of the anchored coordinates with determinant +-1); one component then covers every
  // copy of its basin the group reaches. Empty or one element: no averaging. See
  // rotor_relabellings() (methyl rotors) and particle_relabellings() (identical particles).
  std::vector<std::vector<int64_t>> symmetries;
};

class MintPriorImpl : public torch::nn::Module {
 public:
  explicit MintPriorImpl(MintPriorOptions options);

  // Exact samples, shape (count, M, n); no gradient.
  torch::Tensor sample(int64_t count);
  // One sample from each given component k (int64, shape (B,)), reparameterised: differentiable
  // in the component parameters (used by the reverse-KL objective).
  torch::Tensor sample_components(const torch::Tensor& k);
  // log q(y) for y of shape (B, M, n); differentiable in y and in the parameters.
  torch::Tensor log_prob(const torch::Tensor& y);
  // log q with the frame singularity softened (see path_softening): the U_0 = -log q end of
  // the annealing path. The path weights stay exact for any path potential; they use log_prob.
  torch::Tensor path_log_prob(const torch::Tensor& y);
  // Whether path_log_prob is log_prob itself (only the per-particle family in 3D is softened).
  bool path_log_prob_is_exact() const;
  // sum_{k != l} cos(G_k, G_l), G_k the Gram matrix of component k's unit particle directions
  // in its frame (DESIGN.md §3): pushes components towards different shapes.
  torch::Tensor repulsion();

  // Centres component k on configuration templates[k] (templates: (K, M, n) anchored
  // coordinates): mu_ki along the template's particle i in the component frame and rho_ki its
  // log distance. Weights, kappa and sigma are left as they are.
  void initialize_from(const torch::Tensor& templates);

  // Gaussian family: sets every component at once. means (K, D) frame coordinates,
  // precisions (K, D, D) symmetric positive definite, log_weights (K) unnormalised.
  void set_gaussian_components(const torch::Tensor& means, const torch::Tensor& precisions,
                               const torch::Tensor& log_weights);

  // The frame coordinates z (B, D) of y (B, M, n) with reflection s = +1 (DESIGN.md §3b),
  // D = 2N - 3 in 2D, 3N - 6 in 3D; and log_frame_jacobian(z) = log q(y) - log p_z(z) for the
  // averaged orientation (-log(2 pi r_1^2) in 2D, -log(8 pi^2 r_1^3 b_2^2) in 3D).
  torch::Tensor frame_coordinates(const torch::Tensor& y) const;
  torch::Tensor log_frame_jacobian(const torch::Tensor& z) const;
  // y (B, M, n) in the canonical orientation (e1, e2, e3 the coordinate axes) from z (B, D);
  // differentiable. Inverse of frame_coordinates up to a rotation.
  torch::Tensor from_frame_coordinates(const torch::Tensor& z) const;
  // z with every reflected coordinate negated (R_s, s = -1).
  torch::Tensor reflect_frame_coordinates(const torch::Tensor& z) const;
  int64_t frame_dim() const;  // D
  // Internal family (§3c): the same coordinate map with z = (log r, logit(theta / pi), phi) in
  // the Z-matrix layout; set_gaussian_components puts the torsion centres on the means' torsions
  // and carries the precision over to u = tan((phi - centre) / 2) ~ (phi - centre) / 2.
  bool internal() const { return options_.family == "internal"; }
  bool correlated() const { return gaussian() || internal(); }  // a full Gaussian per component
  const ZMatrix& zmatrix() const { return zmatrix_; }
  // Number of relabellings log q is averaged over (1: none).
  int64_t symmetry_count() const { return symmetries_.defined() ? symmetries_.size(0) : 1; }

  // Internal family: one expectation-maximisation step of the self-normalised forward KL (the
  // "snis" objective of DESIGN.md §3, maximised in closed form instead of by a gradient step)
  // on configurations y (B, M, n) with log importance weights log_w (B) (target over q, any
  // constant): responsibilities over components, reflections and relabellings, then each
  // component's weight, mean in u and variance along each of its current principal axes set to
  // the weighted moments, shrunk towards the current ones as if those had been measured on
  // `strength` effective samples (a component seen by few heavy weights keeps its shape). Returns the effective number of
  // samples each component saw, (K). log_q: log_prob(y) when the caller has it already.
  // split_below > 0: afterwards every component whose weight is under split_below x the largest
  // is re-seeded as half of one of the heaviest components, split along the axis where the draws
  // are widest relative to it (more Gaussians where one per basin is too narrow a family).
  torch::Tensor em_step(const torch::Tensor& y, const torch::Tensor& log_w, double strength,
                        const torch::Tensor& log_q = {}, double split_below = 0.0);

  const MintPriorOptions& options() const { return options_; }
  bool gaussian() const { return options_.family == "gaussian"; }
  bool isotropic() const { return options_.family == "isotropic"; }
  // Isotropic family: the standard deviation of every coordinate.
  torch::Tensor scale() const { return log_scale.exp(); }
  torch::Tensor weights() const { return torch::softmax(logits, 0); }
  torch::Tensor kappa() const { return log_kappa.exp(); }
  torch::Tensor sigma() const { return log_sigma.exp(); }
  // Gaussian family: the upper-triangular precision factor U_k (Sigma_k^-1 = U_k^T U_k), (K, D, D).
  torch::Tensor precision_factor() const;
  torch::Tensor unit_directions() const;  // (K, M, n), normalised mu
  // Each component's most typical configuration (median radii along mu, in its own frame,
  // reflection s = +1), shape (K, M, n): what a component "is", for summaries and plots.
  torch::Tensor component_configurations() const;

  // Parameters. Independent family: logits (K), mu (K, M, n) unnormalised, log_kappa (K),
  // rho (K, M), log_sigma (K, M). Gaussian family: logits (K), mean (K, D), precision_upper
  // (K, D, D; only its strictly upper triangle is used) and log_precision_diag (K, D).
  torch::Tensor logits, mu, log_kappa, rho, log_sigma;
  // Internal family: the same, with mean (K, D) of u and torsion_centre (K, T).
  torch::Tensor mean, precision_upper, log_precision_diag, torsion_centre;
  // Isotropic family: logits (1) and log_scale (1).
  torch::Tensor log_scale;

 private:
  torch::Tensor invariant_log_prob(const torch::Tensor& y_frame_first, double softening);
  torch::Tensor fixed_log_prob(const torch::Tensor& y);
  torch::Tensor gaussian_log_prob(const torch::Tensor& y_frame_first);
  torch::Tensor gaussian_sample(const torch::Tensor& k);
  torch::Tensor component_directions() const;  // rows used by repulsion(), (K, M, n)

  void setup_internal();
  torch::Tensor internal_z(const torch::Tensor& c) const;               // c -> z
  torch::Tensor internal_coordinates_of(const torch::Tensor& z) const;  // z -> c
  torch::Tensor internal_log_jacobian(const torch::Tensor& z) const;    // log |dc/dz|
  torch::Tensor internal_log_prob(const torch::Tensor& y);
  // Per-component log terms (K, 2B) whose logsumexp is log q of the plain mixture (reflection
  // s = +1 in the first B columns), and the component coordinates u (K, 2B, D).
  std::pair<torch::Tensor, torch::Tensor> internal_terms(const torch::Tensor& y);
  torch::Tensor internal_sample(const torch::Tensor& k);
  torch::Tensor internal_centres() const;  // z of each component's centre, (K, D)
  torch::Tensor internal_frame_coordinates(const torch::Tensor& y) const;
  torch::Tensor internal_from_frame_coordinates(const torch::Tensor& z) const;
  torch::Tensor internal_log_frame_jacobian(const torch::Tensor& z) const;
  void set_internal_components(const torch::Tensor& means, const torch::Tensor& precisions,
                               const torch::Tensor& log_weights);
  torch::Tensor draw_gaussian(const torch::Tensor& k);  // m_k + U_k^-1 e, (B, D)
  // log q averaged over the relabellings in `symmetries`, and the plain mixture's log q and samples
  // (path: the softened path end, see path_log_prob).
  torch::Tensor symmetrised_log_prob(const torch::Tensor& y, bool path);
  torch::Tensor mixture_log_prob(const torch::Tensor& y, bool path);
  torch::Tensor mixture_sample(const torch::Tensor& k);
  void setup_symmetries();
  torch::Tensor relabel(const torch::Tensor& y, const torch::Tensor& perms) const;  // (P, B, M, n)
  torch::Tensor with_anchor(const torch::Tensor& y) const;                         // (B, N, n)

  MintPriorOptions options_;
  torch::Tensor order_, inverse_order_;  // frame rows first, and back
  ZMatrix zmatrix_;
  torch::Tensor length_index_, angle_index_, torsion_index_;
  torch::Tensor reflect_sign_;           // (D,) +1, or -1 on the coordinates R_s negates
  torch::Tensor symmetries_, free_rows_;  // (G, N) particle relabellings; undefined: none
};
TORCH_MODULE(MintPrior);

}  // namespace mintjulep
