#pragma once
// Energies of N-body systems in units of kT, batched over a leading sample dimension.
//
// An Energy evaluates the annealing path V(x, t), t in [0, 1], on full Cartesian positions
// x of shape (B, N, n); V(x, 1) = U(x) exactly. Energies are invariant under translations,
// rotations and reflections, and under permutations of identical particles.
//
// The sampler works on anchored coordinates y (B, N-1, n): every particle except the
// anchor, relative to the anchor (DESIGN.md §1). AnchoredEnergy gives V(y, t) and grad_y V.
#include <torch/types.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace mintjulep {

class Energy {
 public:
  virtual ~Energy() = default;

  // The name the system was built from (e.g. "lj13", "dw:4:2").
  virtual std::string name() const = 0;
  virtual int64_t num_particles() const = 0;
  virtual int64_t dim() const = 0;

  // V(x, t) for x of shape (B, N, n), float32 or float64, on any device; returns (B,).
  // t = 1 is the target energy U(x).
  virtual torch::Tensor energy(const torch::Tensor& x, double t = 1.0) const = 0;

  // V(x, t) (B,) and dV/dx (B, N, n), float64, without an autograd graph, where the system has
  // a closed-form gradient for x's device (the pair energies on CPU: one pass over the pairs
  // instead of a dozen tensor ops and their backward). Returns false where it has none, and
  // callers use autograd. AnchoredEnergy::value_and_grad picks it when no graph is wanted.
  virtual bool closed_form_energy_and_gradient(const torch::Tensor& x, double t, torch::Tensor& value,
                                               torch::Tensor& grad) const {
    return false;
  }

  // A type index per particle (identical particles share one), for network embeddings.
  virtual std::vector<int64_t> particle_types() const;
  // Whether permuting particles of one type leaves the energy unchanged (clusters: yes;
  // molecules: no, their bonds tell same-type atoms apart).
  virtual bool same_type_particles_interchangeable() const { return true; }
  // The anchor used when the configuration does not name one.
  virtual int64_t default_anchor() const { return 0; }
  // The two frame particles of the prior (DESIGN.md §3) for this anchor; empty: the first two
  // particles other than the anchor.
  virtual std::vector<int64_t> default_frame(int64_t anchor) const { return {}; }
  // The bond graph as pairs of particle indices (a molecule's covalent bonds); empty for
  // systems without bonds (clusters). The internal-coordinate prior is built from it.
  virtual std::vector<std::array<int64_t, 2>> bonds() const { return {}; }
  // A known structure of the system (1, N, n), e.g. a molecule's PDB coordinates; undefined
  // when there is none.
  virtual torch::Tensor reference_configuration() const { return {}; }
  // A typical distance between neighbouring particles (sets default prior radii).
  virtual double length_scale() const = 0;

  // Throws Error unless x is a floating tensor of shape (B, N, n) for this system.
  void check_positions(const torch::Tensor& x, const std::string& what = "positions") const;
};

struct ValueAndGrad {
  torch::Tensor value;  // (B,)
  torch::Tensor grad;   // same shape as the input coordinates
};

class AnchoredEnergy {
 public:
  AnchoredEnergy(std::shared_ptr<const Energy> energy, int64_t anchor);

  const Energy& energy() const { return *energy_; }
  std::shared_ptr<const Energy> energy_ptr() const { return energy_; }
  int64_t anchor() const { return anchor_; }
  int64_t num_free() const { return energy_->num_particles() - 1; }
  int64_t dim() const { return energy_->dim(); }

  // (B, N, n) full positions -> (B, N-1, n) positions relative to the anchor, anchor row dropped.
  torch::Tensor to_anchored(const torch::Tensor& x) const;
  // (B, N-1, n) -> (B, N, n) with the anchor at the origin.
  torch::Tensor to_full(const torch::Tensor& y) const;

  // V(y, t), shape (B,).
  torch::Tensor value(const torch::Tensor& y, double t = 1.0) const;
  // V(y, t) and grad_y V. With create_graph the gradient stays differentiable (double backward);
  // when y already requires grad the result is differentiable with respect to it.
  ValueAndGrad value_and_grad(const torch::Tensor& y, double t = 1.0, bool create_graph = false) const;

  // Forces on all N particles, -dU/dx, from grad_y V: the anchor gets minus the sum of the
  // others (the energy is translation invariant). Shape (B, N, n).
  torch::Tensor full_forces(const torch::Tensor& grad_y) const;

 private:
  std::shared_ptr<const Energy> energy_;
  int64_t anchor_;
};

}  // namespace mintjulep
