#pragma once
// The built-in systems, by name.
#include <mintjulep/energy.hpp>

#include <memory>
#include <string>
#include <vector>

namespace mintjulep {

// Builds a system from its name:
//   dw4                 double well, 4 particles in 2D (pair sum over i<j)
//   lj13, lj55          Lennard-Jones, pair term over ordered pairs i != j (eps = 2 over i<j,
//                       as in equivariant flow matching / iDEM data) + 0.5 sum |x_i - mean x|^2
//   lj13-half, lj55-half  same with the pair term over i<j (eps = 1, bgflow convention)
//   lj:N:n              pure Lennard-Jones pair term over i<j, eps = 1, rm = 1, no harmonic term
//   dw:N:n              double well with N particles in n dimensions
//   ala2                alanine dipeptide, amber99sb-ildn, vacuum (OpenMM System + PDB in data/)
//   ala2-implicit       alanine dipeptide, amber99sb-ildn + OBC implicit solvent
//   openmm:SYSTEM.xml:TOPOLOGY.pdb   any molecule from a serialized OpenMM System and a PDB
// Throws Error naming the known systems when the name is not one of them.
struct SystemOptions {
  double temperature = 0.0;  // kelvin, molecules only; 0: 300 K
};
std::shared_ptr<Energy> make_system(const std::string& name, const SystemOptions& options = {});

// The folder with the project's data files (force fields, topologies): $MINTJULEP_DATA_DIR
// when set, else the data/ folder of the source tree this binary was built from.
std::string data_dir();

// One line per known system name pattern, for help texts.
std::vector<std::string> known_systems();

}  // namespace mintjulep
