#pragma once
// The files a command writes its results to: one .npz with every array (weights included) and
// any number of PDB, DCD or extended XYZ copies of the configurations.
#include <string>
#include <vector>

namespace mintjulep::cli {

struct OutputFiles {
  std::string npz;
  std::vector<std::string> trajectories;  // .pdb, .dcd, .xyz

  // The .npz, then the trajectories.
  std::vector<std::string> all() const;
  // "a.npz, a.pdb and a.dcd"
  std::string describe() const;
};

// From --out (.npz, .pdb, .dcd or .xyz: a --out that is not .npz also gets the arrays under
// the same name with .npz) and the --trajectory files (.pdb, .dcd, .xyz). Checks the
// extensions, repeated names, and that each file's folder exists and is writable, so that bad
// output paths fail before any sampling is done.
OutputFiles resolve_outputs(const std::string& out, const std::vector<std::string>& trajectories);

// That the folder of `path` exists and is writable and `path` is not a folder (one-line Error
// with the fix otherwise): called before the work whose result goes there.
void check_writable(const std::string& path);

}  // namespace mintjulep::cli
