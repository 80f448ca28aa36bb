// Samples and frames of a system as PDB, DCD or extended XYZ files, in Angstrom, with the
// particle names of the system's topology.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/molecular_energy.hpp>

#include <fmt/format.h>

#include <filesystem>

namespace mintjulep {

ParticleNames particle_names(const Energy& system) {
  ParticleNames names;
  if (const auto* molecule = dynamic_cast<const MolecularEnergy*>(&system)) {
    for (const Atom& atom : molecule->topology().atoms) {
      names.atom_names.push_back(atom.name);
      names.residue_names.push_back(atom.residue_name);
      names.elements.push_back(atom.element);
      names.residue_numbers.push_back(atom.residue_index + 1);
    }
    return names;
  }
  // Clusters have no chemistry: X is the dummy-atom symbol of XYZ and PDB readers.
  for (int64_t i = 0; i < system.num_particles(); ++i) {
    names.atom_names.push_back("X");
    names.residue_names.push_back("UNK");
    names.elements.push_back("X");
    names.residue_numbers.push_back(i + 1);
  }
  return names;
}

double angstrom_per_length_unit(const Energy& system) {
  return dynamic_cast<const MolecularEnergy*>(&system) != nullptr ? 10.0 : 1.0;
}

TrajectoryFormat trajectory_format(const std::string& path) {
  const std::string extension = std::filesystem::path(path).extension().string();
  if (extension == ".npz") return TrajectoryFormat::npz;
  if (extension == ".pdb") return TrajectoryFormat::pdb;
  if (extension == ".dcd") return TrajectoryFormat::dcd;
  if (extension == ".xyz") return TrajectoryFormat::xyz;
  throw Error(fmt::format("'{}': unknown output file type '{}'; use .npz, .pdb, .dcd or .xyz", path, extension));
}

void write_trajectory(const std::string& path, const torch::Tensor& positions, const Energy& system,
                      const std::vector<std::string>& labels) {
  system.check_positions(positions, "write_trajectory positions");
  check(static_cast<int64_t>(labels.size()) == positions.size(0), "write_trajectory needs one label per frame");
  const auto angstrom = positions.detach().to(torch::kCPU, torch::kFloat64) * angstrom_per_length_unit(system);
  const ParticleNames names = particle_names(system);
  switch (trajectory_format(path)) {
    case TrajectoryFormat::pdb:
      write_pdb_models(path, angstrom, names, labels);
      break;
    case TrajectoryFormat::dcd:
      write_dcd(path, angstrom);
      break;
    case TrajectoryFormat::xyz:
      write_extended_xyz(path, angstrom, names.elements, labels);
      break;
    case TrajectoryFormat::npz:
      throw Error(fmt::format("'{}': write_trajectory writes .pdb, .dcd or .xyz; .npz files hold named arrays",
                              path));
  }
}

}  // namespace mintjulep
