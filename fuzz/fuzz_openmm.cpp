// OpenMM System XML import: read_openmm_system. Every particle index of the returned tables
// must name a particle and every parameter must be finite.
#include <mintjulep/force_field.hpp>

#include <cmath>

#include "fuzz_common.hpp"

using namespace mintjulep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mintjulep_fuzz::write_input(data, size, "input.xml");
  mintjulep_fuzz::expect_clean([&] {
    const ForceField ff = read_openmm_system(path);
    const int64_t n = ff.num_particles();
    auto index = [n](int64_t i) { return i >= 0 && i < n; };
    auto finite = [](double v) { return std::isfinite(v); };
    FUZZ_EXPECT(n >= 2);
    for (double m : ff.masses) FUZZ_EXPECT(finite(m) && m > 0);
    FUZZ_EXPECT(static_cast<int64_t>(ff.sigma.size()) == n);
    for (double s : ff.sigma) FUZZ_EXPECT(finite(s));
    for (const auto& b : ff.bonds)
      FUZZ_EXPECT(index(b.i) && index(b.j) && b.i != b.j && finite(b.length) && finite(b.k));
    for (const auto& a : ff.angles)
      FUZZ_EXPECT(index(a.i) && index(a.j) && index(a.k) && finite(a.angle) && finite(a.k_theta));
    for (const auto& t : ff.torsions)
      FUZZ_EXPECT(index(t.i) && index(t.j) && index(t.k) && index(t.l) && finite(t.phase) &&
                  finite(t.k_phi));
    for (const auto& p : ff.nonbonded)
      FUZZ_EXPECT(index(p.i) && index(p.j) && p.i < p.j && finite(p.charge_product) &&
                  finite(p.sigma) && finite(p.epsilon));
    if (ff.born.present) {
      FUZZ_EXPECT(static_cast<int64_t>(ff.born.charge.size()) == n &&
                  static_cast<int64_t>(ff.born.radius.size()) == n &&
                  static_cast<int64_t>(ff.born.scale.size()) == n);
      for (size_t i = 0; i < ff.born.charge.size(); ++i)
        FUZZ_EXPECT(finite(ff.born.charge[i]) && finite(ff.born.radius[i]) && finite(ff.born.scale[i]));
      FUZZ_EXPECT(finite(ff.born.solute_dielectric) && finite(ff.born.solvent_dielectric) &&
                  finite(ff.born.surface_area_energy));
    }
  });
  return 0;
}
