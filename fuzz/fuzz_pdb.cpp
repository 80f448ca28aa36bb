// PDB reading: read_pdb.
#include <mintjulep/force_field.hpp>

#include <cmath>

#include "fuzz_common.hpp"

using namespace mintjulep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mintjulep_fuzz::write_input(data, size, "input.pdb");
  mintjulep_fuzz::expect_clean([&] {
    const Topology top = read_pdb(path);
    FUZZ_EXPECT(!top.atoms.empty());
    FUZZ_EXPECT(top.positions_nm.size() == 3 * top.atoms.size());
    for (double v : top.positions_nm) FUZZ_EXPECT(std::isfinite(v));
    int64_t previous = 0;
    for (const Atom& atom : top.atoms) {
      FUZZ_EXPECT(atom.residue_index == previous || atom.residue_index == previous + 1);
      previous = atom.residue_index;
    }
    FUZZ_EXPECT(top.atoms.front().residue_index == 0);
  });
  return 0;
}
