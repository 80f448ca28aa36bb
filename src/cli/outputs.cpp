#include "cli/outputs.hpp"

#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <unistd.h>

namespace mintjulep::cli {

namespace fs = std::filesystem;

void check_writable(const std::string& path) {
  const fs::path file(path);
  const fs::path folder = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  check(fs::is_directory(folder),
        fmt::format("cannot write '{}': folder '{}' does not exist; create it first", path, folder.string()));
  check(::access(folder.c_str(), W_OK) == 0,
        fmt::format("cannot write '{}': folder '{}' is not writable; write to another folder or make it writable",
                    path, folder.string()));
  check(!fs::is_directory(file), fmt::format("cannot write '{}': it is a folder", path));
}

std::vector<std::string> OutputFiles::all() const {
  std::vector<std::string> files{npz};
  files.insert(files.end(), trajectories.begin(), trajectories.end());
  return files;
}

std::string OutputFiles::describe() const {
  const std::vector<std::string> all = this->all();
  std::string text = all.front();
  for (size_t i = 1; i < all.size(); ++i) text += (i + 1 == all.size() ? " and " : ", ") + all[i];
  return text;
}

OutputFiles resolve_outputs(const std::string& out, const std::vector<std::string>& trajectories) {
  OutputFiles files;
  if (trajectory_format(out) == TrajectoryFormat::npz) {
    files.npz = out;
  } else {
    files.npz = fs::path(out).replace_extension(".npz").string();
    files.trajectories.push_back(out);
  }
  for (const auto& path : trajectories) {
    check(trajectory_format(path) != TrajectoryFormat::npz,
          fmt::format("--trajectory '{}': give .pdb, .dcd or .xyz; the .npz is --out", path));
    files.trajectories.push_back(path);
  }
  std::vector<std::string> all{files.npz};
  all.insert(all.end(), files.trajectories.begin(), files.trajectories.end());
  for (size_t i = 0; i < all.size(); ++i) {
    check(std::find(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(i), all[i]) ==
              all.begin() + static_cast<std::ptrdiff_t>(i),
          fmt::format("output file '{}' is named twice", all[i]));
    check_writable(all[i]);
  }
  return files;
}

}  // namespace mintjulep::cli
