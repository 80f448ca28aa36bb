// XYZ reading: read_xyz, then read_configurations for a 2D (dw4) and a 3D (lj13) system.
#include <mintjulep/io.hpp>
#include <mintjulep/systems.hpp>

#include "fuzz_common.hpp"

using namespace mintjulep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto dw4 = make_system("dw4");
  static const auto lj13 = make_system("lj13");
  const std::string path = mintjulep_fuzz::write_input(data, size, "input.xyz");
  mintjulep_fuzz::expect_clean([&] {
    const XyzTrajectory traj = read_xyz(path);
    FUZZ_EXPECT(traj.positions.dim() == 3 && traj.positions.size(0) >= 1 &&
                traj.positions.size(1) >= 1 && traj.positions.size(2) == 3);
    FUZZ_EXPECT(static_cast<int64_t>(traj.elements.size()) == traj.positions.size(1));
    FUZZ_EXPECT(traj.positions.scalar_type() == torch::kFloat64);
  });
  for (const Energy* system : {dw4.get(), lj13.get()})
    mintjulep_fuzz::expect_clean([&] {
      const torch::Tensor x = read_configurations(path, *system);
      FUZZ_EXPECT(x.dim() == 3 && x.size(1) == system->num_particles() && x.size(2) == system->dim());
      FUZZ_EXPECT(torch::isfinite(x).all().item<bool>());
    });
  return 0;
}
