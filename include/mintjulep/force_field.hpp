#pragma once
// Molecular force fields as plain parameter tables (no tensors), read from the files users
// already have: a serialized OpenMM System (XML) for the energy terms and a PDB file for the
// topology. Units are OpenMM's: nm, kJ/mol, radians, elementary charges, amu.
#include <cstdint>
#include <string>
#include <vector>

namespace mintjulep {

struct Atom {
  std::string name;          // PDB atom name, e.g. "CA"
  std::string residue_name;  // e.g. "ALA"
  int64_t residue_index = 0; // 0-based, in file order
  std::string element;       // e.g. "C"
};

struct Topology {
  std::vector<Atom> atoms;
  std::vector<double> positions_nm;  // 3 per atom, from the PDB (Angstrom / 10)

  // Index of the first atom called `name` in residue `residue_index` (any residue when < 0),
  // or -1 when there is none.
  int64_t find_atom(const std::string& name, int64_t residue_index = -1) const;
};

// Reads ATOM/HETATM records of a PDB file (first model only). Elements come from columns
// 77-78, else from the atom name. Throws Error on a missing file or a malformed record.
Topology read_pdb(const std::string& path);

struct HarmonicBond { int64_t i, j; double length, k; };              // 0.5 k (r - length)^2
struct HarmonicAngle { int64_t i, j, k; double angle, k_theta; };     // 0.5 k (theta - angle)^2
struct PeriodicTorsion { int64_t i, j, k, l; int periodicity; double phase, k_phi; };  // k_phi (1 + cos(n phi - phase))
// A nonbonded pair with its own parameters: 4 eps [(sigma/r)^12 - (sigma/r)^6] + C qq / r.
struct NonbondedPair { int64_t i, j; double charge_product, sigma, epsilon; };

struct GeneralizedBorn {
  bool present = false;
  std::vector<double> charge, radius, scale;  // per particle (radius in nm, OBC scale factor)
  double solute_dielectric = 1.0, solvent_dielectric = 78.5;
  double surface_area_energy = 2.25936;  // kJ/mol/nm^2 (ACE non-polar term)
};

struct ForceField {
  std::vector<double> masses;
  std::vector<HarmonicBond> bonds;
  std::vector<HarmonicAngle> angles;
  std::vector<PeriodicTorsion> torsions;
  // Every interacting nonbonded pair: all i < j not listed as exceptions (Lorentz-Berthelot
  // combination of the per-particle parameters) plus the non-zero exceptions as given.
  std::vector<NonbondedPair> nonbonded;
  // Per-particle Lennard-Jones sigma, for the soft-core minimum position of pairs that only
  // interact through the Born term.
  std::vector<double> sigma;
  GeneralizedBorn born;

  int64_t num_particles() const { return static_cast<int64_t>(masses.size()); }
};

// Reads a serialized OpenMM System with OpenMM's XmlSerializer. Supported forces:
// HarmonicBondForce, HarmonicAngleForce, PeriodicTorsionForce, NonbondedForce (NoCutoff) and
// GBSAOBCForce (NoCutoff); CMMotionRemover is ignored. Anything else (another force, a cutoff
// or periodic method, virtual sites, constraints) is an Error naming it.
ForceField read_openmm_system(const std::string& xml_path);

// The Coulomb constant 1/(4 pi eps0) in kJ/mol nm / e^2, as OpenMM defines it.
double coulomb_constant();
// Boltzmann's constant in kJ/mol/K (DESIGN.md §1).
constexpr double kBoltzmannKJPerMolK = 0.0083144626;

}  // namespace mintjulep
