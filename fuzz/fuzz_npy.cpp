// .npy and .npz reading: read_npy, read_npz and read_configurations on the same bytes.
#include <mintjulep/io.hpp>
#include <mintjulep/systems.hpp>

#include "fuzz_common.hpp"

using namespace mintjulep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto dw4 = make_system("dw4");
  const std::string npy = mintjulep_fuzz::write_input(data, size, "input.npy");
  const std::string npz = mintjulep_fuzz::write_input(data, size, "input.npz");
  mintjulep_fuzz::expect_clean([&] {
    const torch::Tensor t = read_npy(npy);
    FUZZ_EXPECT(t.defined() && t.device().is_cpu() && t.is_contiguous());
  });
  mintjulep_fuzz::expect_clean([&] {
    for (const auto& [name, t] : read_npz(npz)) FUZZ_EXPECT(t.defined() && t.device().is_cpu());
  });
  for (const std::string& path : {npy, npz})
    mintjulep_fuzz::expect_clean([&] {
      const torch::Tensor x = read_configurations(path, *dw4);
      FUZZ_EXPECT(x.dim() == 3 && x.size(1) == 4 && x.size(2) == 2);
      FUZZ_EXPECT(x.scalar_type() == torch::kFloat64 && torch::isfinite(x).all().item<bool>());
    });
  return 0;
}
