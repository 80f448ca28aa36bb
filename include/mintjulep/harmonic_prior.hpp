#pragma once
// Harmonic initialisation of the gaussian Mint prior (DESIGN.md §3b): components on distinct
// local minima of U, covariance = inverse Hessian of U in the frame coordinates (eigenvalues
// floored), weights from the harmonic free energies: a harmonic superposition approximation
// of exp(-U) that training then refines.
#include <mintjulep/energy.hpp>
#include <mintjulep/mint_prior.hpp>

#include <vector>

namespace mintjulep {

struct HarmonicOptions {
  // Random compact starts minimised per component (more starts find more minima).
  int64_t starts_per_component = 4;
  // For interchangeable particles, relabelled copies of each minimum are added (all N!
  // labellings when N! <= this, otherwise this many random ones): the prior must cover every
  // labelling, or log Z comes out short by the log of the multiplicity.
  int64_t max_relabellings = 720;
  // Hessian eigenvalues (kT per unit of frame coordinate squared) below this are raised to it:
  // soft and unstable directions get a standard deviation of at most 1 / sqrt(floor).
  double hessian_floor = 1.0;
  // Covariances are multiplied by this (> 1 widens components beyond the harmonic estimate).
  double covariance_scale = 1.0;
  // Two minima are the same when their canonical positions (up to the frame reflection)
  // differ by less than this fraction of the length scale.
  double merge_tolerance = 0.05;
  // Molecules: minima that differ only by a relabelling of interchangeable terminal atoms (the
  // hydrogens of a methyl group) are one minimum, so that every basin is covered by one
  // labelled copy (log Z is then short by the log of the number of such labellings, the same
  // for every basin, and basin weights are unbiased). false: every labelled copy found is kept.
  bool merge_relabelled = true;
  // Internal family: standard deviation (radians) added to every component along each rotor's
  // rigid rotation (the three torsions of a methyl group turned together). A methyl rotor's
  // cosine barrier is far softer away from the minimum than its curvature says; with
  // rotor_symmetry the three widened copies then overlap and cover the whole circle.
  double rotor_sd = 0.0;
  // Defensive wide copies: with tail_weight f > 0 the second half of the K components repeats
  // the first half's basins with covariance x tail_scale and a fraction f of each basin's
  // weight (the first half keeps 1 - f). Where the harmonic widths are too narrow (anharmonic
  // basins) log w then stays below log(1/f) + log of the wide copies' mismatch instead of
  // growing without bound in the tails. K must be even.
  double tail_weight = 0.0;
  double tail_scale = 4.0;
};

struct HarmonicMinimum {
  torch::Tensor y;          // (M, n) anchored positions, canonical frame orientation
  double energy = 0;        // U(y*), kT
  double free_energy = 0;   // -U + 1/2 log det Sigma + log |dy/dz|: log of the basin's mass
  double weight = 0;        // mixture weight given to it (summed over its components)
  int64_t copies = 0;       // components placed on it
  bool chiral = false;      // its mirror image is a different labelled minimum
};

struct HarmonicInitResult {
  std::vector<HarmonicMinimum> minima;  // distinct minima kept, by decreasing free energy
  int64_t candidates = 0;               // minimised starts (with relabelled copies)
  int64_t distinct = 0;                 // distinct labelled minima among them
  int64_t relabellings = 1;             // relabellings of terminal atoms merged (1: none)
};

// Minimises starts_per_component * K random compact starts (L-BFGS on the soft-core path end
// t = 0, then on U), adds relabelled copies, merges duplicates, and sets the prior's K
// components on the distinct minima of highest harmonic free energy (cycling through them when
// there are fewer than K). The prior must be of the gaussian or internal family; for the internal
// family the starts are random rotamers of the molecule (discover_molecule_minima).
HarmonicInitResult initialize_harmonic_prior(MintPrior& prior, const AnchoredEnergy& energy,
                                             const HarmonicOptions& options = {});

// The same from given minimised configurations y (S, M, n) instead of random starts.
HarmonicInitResult initialize_harmonic_prior_from(MintPrior& prior, const AnchoredEnergy& energy,
                                                  const torch::Tensor& minima,
                                                  const HarmonicOptions& options = {});

// Random compact starts (B, M, n): every particle uniform in a ball of radius
// 0.6 * length_scale * N^(1/n), anchored; the starting points of init = "minima" / "harmonic".
torch::Tensor random_compact_starts(const AnchoredEnergy& energy, int64_t count);

// Rotors of a molecule: each group of three same-type terminal atoms bonded to one centre
// atom that has exactly one other neighbour (a methyl group's hydrogens), as particle indices.
// Groups holding `anchor` are left out. Empty for systems without bonds.
std::vector<std::vector<int64_t>> terminal_rotors(const Energy& system, int64_t anchor);

// The cyclic relabellings of the given rotors (3^R permutations of the N particle indices, the
// identity first): the relabellings a rotation of each methyl group reaches.
std::vector<std::vector<int64_t>> rotor_relabellings(const std::vector<std::vector<int64_t>>& rotors,
                                                     int64_t num_particles);
// Every relabelling of the N particles (N! permutations) when all are of one type and
// interchangeable and N! <= limit; otherwise empty.
std::vector<std::vector<int64_t>> particle_relabellings(const Energy& system, int64_t limit = 720);

// Hessian of U(y(z)) in the frame coordinates at z (B, D), (B, D, D), by double backward.
torch::Tensor frame_hessian(const MintPrior& prior, const AnchoredEnergy& energy, const torch::Tensor& z);

}  // namespace mintjulep
