#include <mintjulep/error.hpp>
#include <mintjulep/pair_energies.hpp>
#include <mintjulep/systems.hpp>

#include <fmt/format.h>

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
  };
}

static std::string unknown_system_message(const std::string& name) {
  return fmt::format(
      "unknown system '{}'; known systems: dw4, lj13, lj55, lj13-half, lj55-half, lj:N:n, dw:N:n "
      "(N >= 2 particles, n = 2 or 3)",
      name);
}

std::shared_ptr<Energy> make_system(const std::string& name) {
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
