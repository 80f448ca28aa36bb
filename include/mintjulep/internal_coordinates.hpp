#pragma once
// Internal coordinates of a molecule (DESIGN.md §3c): a Z-matrix built from the bond graph,
// the forward map from anchored Cartesian positions to (bond lengths, angles, torsions), its
// inverse (NeRF placement in a canonical orientation) and the log volume element between
// them. Everything is batched over samples; the forward map is also batched over atoms.
//
// Anchored coordinates y (B, M, 3) hold every atom but the anchor, relative to it; the anchor
// itself is row M of the zero-padded tensor the index lists below refer to.
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <vector>

namespace mintjulep {

class ZMatrix {
 public:
  ZMatrix() = default;
  // root = anchor; f1, f2 = frame_particles (both bonded to the anchor); every other atom i,
  // in breadth-first order over the bond graph, is placed from earlier atoms p_i (bonded to i),
  // g_i (bonded to p_i) and h_i (bonded to g_i, else another neighbour of p_i). Particle
  // indices throughout; throws Error when the graph is empty, disconnected, or the frame atoms
  // are not bonded to the anchor.
  ZMatrix(int64_t num_particles, int64_t anchor, std::array<int64_t, 2> frame_particles,
          const std::vector<std::array<int64_t, 2>>& bonds);

  int64_t num_free() const { return num_free_; }       // M = N - 1
  int64_t dim() const { return 3 * num_free_ - 3; }     // D = 3N - 6
  int64_t num_placed() const { return num_free_ - 2; }  // T: atoms placed by (r, theta, phi)
  // Coordinate layout c = (r_1, r_2, theta_2, (r_i, theta_i, phi_i) for the T placed atoms).
  // Index lists (into c) of the bond lengths, the angles and the torsions.
  const std::vector<int64_t>& length_index() const { return length_index_; }
  const std::vector<int64_t>& angle_index() const { return angle_index_; }
  const std::vector<int64_t>& torsion_index() const { return torsion_index_; }
  // Rows of y (anchor = M) of the frame atoms and of each placed atom and its references.
  int64_t f1() const { return f1_; }
  int64_t f2() const { return f2_; }
  const std::vector<int64_t>& atoms() const { return atom_; }
  const std::vector<int64_t>& parents() const { return parent_; }
  const std::vector<int64_t>& grandparents() const { return grand_; }
  const std::vector<int64_t>& references() const { return great_; }
  // Whether the torsion of placed atom j turns about the bond p_j - g_j with h_j bonded to
  // g_j (a proper dihedral), rather than fixing i against another neighbour of p_j.
  const std::vector<bool>& proper() const { return proper_; }

  // c (B, D) of y (B, M, 3); float64, differentiable. Torsions in (-pi, pi].
  torch::Tensor coordinates(const torch::Tensor& y) const;
  // y (B, M, 3) from c (B, D): anchor at the origin, f1 on +x, f2 in the xy plane (+y side),
  // every other atom by NeRF in placement order. Differentiable; inverse of coordinates()
  // up to a rotation.
  torch::Tensor positions(const torch::Tensor& c) const;
  // log of the volume element dy = J(c) dR dc for the rotations R (with the rotation measure
  // normalised to 1): log(4 pi r_1^2) + log(2 pi r_2^2 sin theta_2) + sum_i log(r_i^2 sin theta_i).
  torch::Tensor log_volume(const torch::Tensor& c) const;

  // Rotatable bonds: groups of placed atoms (indices 0..T-1 into atoms()) that share a proper
  // torsion axis p - g and whose group holds at least one atom that is not terminal in the bond
  // graph (so a methyl rotor is not one, the backbone dihedrals are). Adding one angle to the
  // torsions of a group turns the part of the molecule beyond the bond rigidly.
  const std::vector<std::vector<int64_t>>& rotatable_groups() const { return rotatable_; }

 private:
  int64_t num_free_ = 0, f1_ = -1, f2_ = -1;
  std::vector<int64_t> atom_, parent_, grand_, great_;
  std::vector<bool> proper_;
  std::vector<int64_t> length_index_, angle_index_, torsion_index_;
  std::vector<std::vector<int64_t>> rotatable_;
};

class AnchoredEnergy;

// `count` random rotamers (count, M, 3) of the anchored structure `base` (M, 3): the torsions of
// every rotatable group of the Z-matrix turned by one uniform angle in (-pi, pi) per group.
torch::Tensor random_rotamers(const ZMatrix& zmatrix, const torch::Tensor& base, int64_t count);

// Data-free basin discovery for a molecule: `count` random rotamers of its reference structure
// (or, without one, of a minimised compact start), each minimised on the soft-core end of the
// path (t = 0: atoms that the random torsions made overlap stay finite) and then on U. Returns
// (count + 1, M, 3): the minimised reference first, then the minimised rotamers.
torch::Tensor discover_molecule_minima(const AnchoredEnergy& energy, const ZMatrix& zmatrix, int64_t count,
                                       int64_t soft_iterations = 300, int64_t iterations = 2000);

// Dihedral angle a-b-c-d (IUPAC sign, (-pi, pi]) of batched points (..., 3).
torch::Tensor dihedral_angle(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c,
                             const torch::Tensor& d);

}  // namespace mintjulep
