#include <mintjulep/energy.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/printable.hpp"
#include "io/atomic_file.hpp"

namespace mintjulep {

// strtod, unlike operator>>, also reads "nan" and "inf", which are then reported as such.
static bool parse_double(const std::string& text, double& value) {
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end != text.c_str() && *end == '\0';
}

XyzTrajectory read_xyz(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), fmt::format("cannot open '{}': no such file or not readable", path));
  std::vector<double> values;
  XyzTrajectory result;
  int64_t atoms = -1, frames = 0, line_number = 0;
  std::string line;
  auto next_line = [&](const char* what) {
    check(static_cast<bool>(std::getline(in, line)),
          fmt::format("{}: file ends at line {} where {} was expected (frame {})", path,
                      line_number, what, frames + 1));
    ++line_number;
  };
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank between frames
    std::istringstream count_line(line);
    int64_t count = -1;
    std::string rest;
    check(static_cast<bool>(count_line >> count) && !(count_line >> rest) && count > 0,
          fmt::format("{}:{}: expected the atom count of frame {}, got '{}'", path, line_number,
                      frames + 1, printable(line)));
    check(atoms < 0 || count == atoms,
          fmt::format("{}:{}: frame {} has {} atoms but the first frame has {}; all frames must "
                      "have the same atoms",
                      path, line_number, frames + 1, count, atoms));
    atoms = count;
    next_line("a comment line");
    for (int64_t i = 0; i < count; ++i) {
      next_line("an atom line");
      std::istringstream atom(line);
      std::string symbol, coordinate[3];
      double xyz[3];
      bool ok = static_cast<bool>(atom >> symbol >> coordinate[0] >> coordinate[1] >> coordinate[2]);
      for (int k = 0; ok && k < 3; ++k) ok = parse_double(coordinate[k], xyz[k]);
      check(ok, fmt::format("{}:{}: expected 'symbol x y z', got '{}'", path, line_number,
                            printable(line)));
      if (frames == 0) result.elements.push_back(symbol);
      values.insert(values.end(), xyz, xyz + 3);
    }
    ++frames;
  }
  check(frames > 0, fmt::format("{}: no frames found; an XYZ frame starts with the atom count", path));
  result.positions =
      torch::tensor(values, torch::TensorOptions().dtype(torch::kFloat64)).reshape({frames, atoms, 3});
  return result;
}

namespace {

// The XYZ text of frames (F, N, 2 or 3), with comments[f] as frame f's comment line.
std::string xyz_text(const torch::Tensor& positions, const std::vector<std::string>& elements,
                     const std::vector<std::string>& comments) {
  check(positions.dim() == 3 && (positions.size(2) == 2 || positions.size(2) == 3),
        "write_xyz needs positions of shape (frames, atoms, 2 or 3)");
  check(static_cast<int64_t>(elements.size()) == positions.size(1),
        "write_xyz needs one element symbol per atom");
  check(static_cast<int64_t>(comments.size()) == positions.size(0), "write_xyz needs one comment per frame");
  auto x = positions.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const auto acc = x.accessor<double, 3>();
  std::string text;
  for (int64_t f = 0; f < x.size(0); ++f) {
    text += fmt::format("{}\n{}\n", x.size(1), comments[static_cast<size_t>(f)]);
    for (int64_t i = 0; i < x.size(1); ++i) {
      const double z = x.size(2) == 3 ? acc[f][i][2] : 0.0;
      text += fmt::format("{} {:.10f} {:.10f} {:.10f}\n", elements[static_cast<size_t>(i)],
                          acc[f][i][0], acc[f][i][1], z);
    }
  }
  return text;
}

}  // namespace

void write_xyz(const std::string& path, const torch::Tensor& positions,
               const std::vector<std::string>& elements, const std::string& comment) {
  const int64_t frames = positions.dim() == 3 ? positions.size(0) : 0;
  const std::string text = xyz_text(positions, elements, std::vector<std::string>(static_cast<size_t>(frames), comment));
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

void write_extended_xyz(const std::string& path, const torch::Tensor& positions,
                        const std::vector<std::string>& elements,
                        const std::vector<std::string>& properties) {
  std::vector<std::string> comments;
  for (const auto& p : properties)
    comments.push_back("Properties=species:S:1:pos:R:3 pbc=\"F F F\"" + (p.empty() ? "" : " " + p));
  const std::string text = xyz_text(positions, elements, comments);
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

torch::Tensor read_configurations(const std::string& path, const Energy& system, bool every_md_frame) {
  torch::Tensor x;
  if (ends_with(path, ".npy")) {
    x = read_npy(path);
    check(x.is_floating_point(),
          fmt::format("{}: positions must be float32 or float64, not integers", path));
    if (x.dim() == 2) x = x.unsqueeze(0);
  } else if (ends_with(path, ".xyz")) {
    x = read_xyz(path).positions;
  } else if (ends_with(path, ".npz")) {
    auto arrays = read_npz(path);
    check(arrays.count("positions"), fmt::format("{}: no 'positions' array in the archive", path));
    x = arrays["positions"];
    if (x.dim() == 4) {  // an md trajectory (F, R, N, n): its last frame, or every frame
      check(x.size(0) > 0, fmt::format("{}: 'positions' is a trajectory with no frames", path));
      x = every_md_frame ? x.reshape({-1, x.size(2), x.size(3)}) : x[x.size(0) - 1];
    }
  } else if (ends_with(path, ".pdb") || ends_with(path, ".dcd")) {
    // Angstrom, every model or frame, in the system's length unit.
    x = ends_with(path, ".pdb") ? read_pdb_models(path) : read_dcd(path).to(torch::kFloat64);
    x = x / angstrom_per_length_unit(system);
  } else {
    throw Error(fmt::format("'{}': unknown file type; give a .npy array of shape (B, N, n), an "
                            ".npz with positions, an .xyz file, or a .pdb or .dcd file (Angstrom)",
                            path));
  }
  if (system.dim() == 2 && x.dim() == 3 && x.size(2) == 3 && x.size(1) == system.num_particles() &&
      !ends_with(path, ".npy") && !ends_with(path, ".npz")) {
    check(x.select(2, 2).eq(0).all().item<bool>(),
          fmt::format("{}: system '{}' is two-dimensional but the z column is not 0", path,
                      system.name()));
    x = x.narrow(2, 0, 2);
  }
  system.check_positions(x, path + ": positions");
  x = x.to(torch::kFloat64);
  auto finite_per_frame = torch::isfinite(x).flatten(1).all(1);
  if (!finite_per_frame.all().item<bool>()) {
    const int64_t bad = (~finite_per_frame).nonzero()[0][0].item<int64_t>();
    throw Error(fmt::format("{}: configuration {} (0-based) contains NaN or infinite coordinates",
                            path, bad));
  }
  return x;
}

}  // namespace mintjulep
