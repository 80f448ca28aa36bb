#pragma once
// Molecular-mechanics energies (Amber-style force fields from OpenMM Systems), batched over
// samples, in units of kT. Positions are in nm as in OpenMM.
//
// Along the annealing path (DESIGN.md §2) the bonded terms are unchanged and every nonbonded
// pair uses the soft-core distance r~ = r + rm_ij (1 - t), rm_ij = 2^(1/6) sigma_ij, in its
// Lennard-Jones and Coulomb terms. The generalized-Born term uses the same r~ for every pair
// (rm from the combined per-particle sigmas), so that overlapping atoms stay finite at t < 1.
// At t = 1 every term is exactly OpenMM's.
#include <mintjulep/energy.hpp>
#include <mintjulep/force_field.hpp>

#include <map>
#include <mutex>
#include <utility>

namespace mintjulep {

class MolecularEnergy : public Energy {
 public:
  MolecularEnergy(std::string name, ForceField force_field, Topology topology,
                  double temperature_kelvin = 300.0);

  std::string name() const override { return name_; }
  int64_t num_particles() const override { return force_field_.num_particles(); }
  int64_t dim() const override { return 3; }
  torch::Tensor energy(const torch::Tensor& x, double t = 1.0) const override;
  std::vector<int64_t> particle_types() const override;
  bool same_type_particles_interchangeable() const override { return false; }
  // The first atom called CA (the alpha carbon), else atom 0.
  int64_t default_anchor() const override;
  // Mean bond length (nm).
  double length_scale() const override;
  std::vector<int64_t> default_frame(int64_t anchor) const override;
  // The covalent bonds: the force field's harmonic bonds.
  std::vector<std::array<int64_t, 2>> bonds() const override;
  // The PDB coordinates (1, N, 3), nm.
  torch::Tensor reference_configuration() const override;

  // Each force-field term in kJ/mol, shape (B,): "bonds", "angles", "torsions", "nonbonded"
  // and, with implicit solvent, "born" (polar + non-polar). Their sum / kT is energy().
  std::vector<std::pair<std::string, torch::Tensor>> term_energies(const torch::Tensor& x,
                                                                   double t = 1.0) const;

  double temperature() const { return temperature_; }
  double kT() const { return kBoltzmannKJPerMolK * temperature_; }  // kJ/mol
  const ForceField& force_field() const { return force_field_; }
  const Topology& topology() const { return topology_; }
  // Masses (amu) as a (N,) float64 tensor.
  torch::Tensor masses() const;

 private:
  struct Tables;  // parameter tensors on one device and dtype
  const Tables& tables(const torch::Tensor& like) const;

  std::string name_;
  ForceField force_field_;
  Topology topology_;
  double temperature_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::shared_ptr<Tables>> tables_;
};

// Builds a molecular system from a serialized OpenMM System and a PDB topology; checks that
// both describe the same number of atoms.
std::shared_ptr<MolecularEnergy> make_molecule(const std::string& name,
                                               const std::string& system_xml,
                                               const std::string& topology_pdb,
                                               double temperature_kelvin = 300.0);

}  // namespace mintjulep
