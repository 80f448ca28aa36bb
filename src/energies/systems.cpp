#include <mintjulep/error.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/pair_energies.hpp>
#include <mintjulep/systems.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <regex>

namespace mintjulep {

std::vector<std::string> known_systems() {
  return {
      "dw4        double well, 4 particles in 2D",
      "lj13       Lennard-Jones 13 in 3D, pair term over ordered pairs i != j + harmonic term",
      "lj55       Lennard-Jones 55 in 3D, pair term over ordered pairs i != j + harmonic term",
      "lj13-half  Lennard-Jones 13 in 3D, pair term over i < j + harmonic term",
      "lj55-half  Lennard-Jones 55 in 3D, pair term over i < j + harmonic term",
      "lj:N:n     Lennard-Jones pair term over i < j, N particles in n = 2 or 3 dimensions",
      "dw:N:n     double well, N particles in n = 2 or 3 dimensions",
      "ala2       alanine dipeptide, amber99sb-ildn in vacuum (nm, kT at --temperature)",
      "ala2-implicit  alanine dipeptide, amber99sb-ildn + OBC implicit solvent",
      "openmm:SYSTEM.xml:TOPOLOGY.pdb  any molecule from a serialized OpenMM System and a PDB",
  };
}

static std::string unknown_system_message(const std::string& name) {
  return fmt::format(
      "unknown system '{}'; known systems: dw4, lj13, lj55, lj13-half, lj55-half, lj:N:n, dw:N:n "
      "(N >= 2 particles, n = 2 or 3), ala2, ala2-implicit, openmm:SYSTEM.xml:TOPOLOGY.pdb",
      name);
}

std::string data_dir() {
  if (const char* env = std::getenv("MINTJULEP_DATA_DIR"); env != nullptr && *env != '\0') return env;
  return MINTJULEP_SOURCE_DATA_DIR;
}

static std::shared_ptr<Energy> make_molecular_system(const std::string& name, double temperature) {
  const double kelvin = temperature > 0.0 ? temperature : 300.0;
  if (name == "ala2" || name == "ala2-implicit") {
    const std::filesystem::path folder = std::filesystem::path(data_dir()) / "alanine-dipeptide";
    const std::string xml = name == "ala2" ? "amber99sbildn-vacuum.xml" : "amber99sbildn-obc.xml";
    check(std::filesystem::exists(folder / xml),
          fmt::format("system '{}' needs '{}', which is missing; set MINTJULEP_DATA_DIR to the "
                      "project's data/ folder",
                      name, (folder / xml).string()));
    return make_molecule(name, (folder / xml).string(), (folder / "ala2.pdb").string(), kelvin);
  }
  // openmm:SYSTEM.xml:TOPOLOGY.pdb
  const std::string spec = name.substr(7);
  const auto colon = spec.rfind(':');
  check(colon != std::string::npos && colon > 0 && colon + 1 < spec.size(),
        fmt::format("system '{}' must look like openmm:SYSTEM.xml:TOPOLOGY.pdb", name));
  return make_molecule(name, spec.substr(0, colon), spec.substr(colon + 1), kelvin);
}

std::shared_ptr<Energy> make_system(const std::string& name, const SystemOptions& options) {
  const bool molecular = name == "ala2" || name == "ala2-implicit" || name.rfind("openmm:", 0) == 0;
  check(std::isfinite(options.temperature) && options.temperature >= 0.0,
        fmt::format("temperature {} K is not positive", options.temperature));
  if (molecular) return make_molecular_system(name, options.temperature);
  check(options.temperature == 0.0,
        fmt::format("system '{}' is in reduced units (energies already in kT); a temperature "
                    "applies only to molecular systems",
                    name));
  if (name == "dw4") return std::make_shared<DoubleWellEnergy>(name, 4, 2);
  if (name == "lj13") return std::make_shared<LennardJonesEnergy>(name, 13, 3, 2.0, 1.0);
  if (name == "lj55") return std::make_shared<LennardJonesEnergy>(name, 55, 3, 2.0, 1.0);
  if (name == "lj13-half") return std::make_shared<LennardJonesEnergy>(name, 13, 3, 1.0, 1.0);
  if (name == "lj55-half") return std::make_shared<LennardJonesEnergy>(name, 55, 3, 1.0, 1.0);

  static const std::regex generic(R"((lj|dw):(\d{1,6}):(\d{1,2}))");
  std::smatch m;
  if (std::regex_match(name, m, generic)) {
    const int64_t n_particles = std::stoll(m[2]);
    const int64_t dim = std::stoll(m[3]);
    check(n_particles >= 2, fmt::format("system '{}' needs at least 2 particles", name));
    check(dim == 2 || dim == 3,
          fmt::format("system '{}' has dimension {}; only n = 2 or 3 is supported", name, dim));
    if (m[1] == "lj") return std::make_shared<LennardJonesEnergy>(name, n_particles, dim, 1.0, 0.0);
    return std::make_shared<DoubleWellEnergy>(name, n_particles, dim);
  }
  throw Error(unknown_system_message(name));
}

}  // namespace mintjulep
