// TOML run-configuration reading: load_config.
#include <mintjulep/config.hpp>

#include "fuzz_common.hpp"

using namespace mintjulep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mintjulep_fuzz::write_input(data, size, "input.toml");
  mintjulep_fuzz::expect_clean([&] {
    const RunConfig c = load_config(path);
    FUZZ_EXPECT(!c.system.empty());
    FUZZ_EXPECT(c.threads >= 0);
  });
  return 0;
}
