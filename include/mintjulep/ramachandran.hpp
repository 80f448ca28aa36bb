#pragma once
// Backbone analysis of peptides: phi/psi dihedrals, C-alpha chirality, importance-weighted
// Ramachandran histograms, basin populations and the Jensen-Shannon divergence between two
// histograms. Angles are in radians in [-pi, pi) unless a name says degrees.
#include <mintjulep/force_field.hpp>

#include <torch/types.h>

#include <string>

namespace mintjulep {

// phi = C(i-1) - N - CA - C, psi = N - CA - C - N(i+1); CB and HA define the chirality.
struct BackboneAtoms {
  int64_t c_prev = -1, n = -1, ca = -1, c = -1, n_next = -1, cb = -1, ha = -1;
};

// The first residue with a CA whose neighbours provide C(i-1) and N(i+1) (for alanine
// dipeptide: ALA between ACE and NME). Throws Error when the topology has none.
BackboneAtoms find_backbone(const Topology& topology);

// Dihedral angle i-j-k-l (IUPAC sign) of each configuration in x (B, N, 3): (B,).
torch::Tensor dihedral(const torch::Tensor& x, int64_t i, int64_t j, int64_t k, int64_t l);

// +1 for L, -1 for D at the C-alpha: sign of (N - CA) . ((C - CA) x (CB - CA)), which is
// positive for L-amino acids (CO, R, N clockwise seen from HA). Shape (B,).
torch::Tensor chirality(const torch::Tensor& x, const BackboneAtoms& atoms);

// Mirrors every D configuration (x -> -x) so that all are L; weights are unchanged because the
// force field is invariant under reflections. phi and psi change sign.
torch::Tensor mirror_to_l(const torch::Tensor& x, const BackboneAtoms& atoms);

// Weighted 2D histogram of (phi, psi) on [-pi, pi)^2 with bins x bins cells, rows phi and
// columns psi, normalised to sum 1. weights: (B,) non-negative (need not be normalised).
torch::Tensor ramachandran_histogram(const torch::Tensor& phi, const torch::Tensor& psi,
                                     const torch::Tensor& weights, int64_t bins = 60);

// Weight fractions of the three conformational regions of alanine dipeptide:
//   alpha_L / C7ax: phi >= 0;  alpha_R: phi < 0 and -120 <= psi < 50 degrees;
//   C7eq / C5: phi < 0 otherwise (the extended beta region).
struct BasinFractions {
  double c7eq_c5 = 0, alpha_r = 0, alpha_l_c7ax = 0;
};
BasinFractions basin_fractions(const torch::Tensor& phi, const torch::Tensor& psi,
                               const torch::Tensor& weights);

// Jensen-Shannon divergence (natural log, in [0, ln 2]) between two histograms of the same
// shape; each is normalised first.
double jensen_shannon(const torch::Tensor& p, const torch::Tensor& q);

// Writes a Ramachandran histogram as a PNG heat map: phi on the horizontal axis and psi on
// the vertical axis, both from -180 to 180 degrees, colour = -log density (free energy,
// dark = most probable), white = empty, grid lines every 90 degrees.
void write_ramachandran_png(const std::string& path, const torch::Tensor& histogram,
                            int64_t pixels_per_bin = 6);

}  // namespace mintjulep
