#pragma once
// Harmonic initialisation of the internal Mint prior family (DESIGN.md §3c): components on
// distinct local minima of U, precision = Hessian of U in the family's coordinates z
// (log r, logit(theta / pi), phi) at the minimum with eigenvalues floored, weights from the
// harmonic free energies (a harmonic superposition approximation of exp(-U)).
#include <mintjulep/energy.hpp>
#include <mintjulep/mint_prior.hpp>

#include <vector>

namespace mintjulep {

struct InternalHarmonicOptions {
  int64_t starts_per_component = 4;  // random rotamers minimised per component
  double hessian_floor = 1.0;        // kT per unit of z squared
  double covariance_scale = 1.0;     // > 1 widens the components
  double merge_tolerance = 0.05;     // same minimum: canonical RMS below this x length scale
};

struct InternalMinimum {
  torch::Tensor y;          // (M, 3) anchored positions, canonical orientation
  double energy = 0;        // U(y*), kT
  double free_energy = 0;   // -U + 1/2 log det(2 pi Sigma_z) - log q's Jacobian: log of the basin's mass
  double weight = 0;        // mixture weight given to it
  int64_t copies = 0;       // components placed on it
};

struct InternalHarmonicResult {
  std::vector<InternalMinimum> minima;  // the minima used, by decreasing free energy
  int64_t candidates = 0;               // minimised structures
  int64_t distinct = 0;                 // distinct minima among them
};

// Finds minima by discover_molecule_minima (random rotamers, minimised) and centres the prior on them.
InternalHarmonicResult initialize_internal_harmonic_prior(MintPrior& prior, const AnchoredEnergy& energy,
                                                          const InternalHarmonicOptions& options = {});
// The same from given minimised structures (S, M, 3).
InternalHarmonicResult initialize_internal_harmonic_prior_from(MintPrior& prior, const AnchoredEnergy& energy,
                                                               const torch::Tensor& minima,
                                                               const InternalHarmonicOptions& options = {});

// Hessian of U(y(z)) in the prior's coordinates z at z (B, D): (B, D, D), by double backward.
torch::Tensor internal_hessian(const MintPrior& prior, const AnchoredEnergy& energy, const torch::Tensor& z);

}  // namespace mintjulep
