// Multi-model PDB files: every sample or frame one MODEL, with fixed-column ATOM records.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "io/atomic_file.hpp"

namespace mintjulep {
namespace {

// Names shorter than four characters with a one-letter element start in column 14, so that
// the element letter lines up with column 14 as readers expect (" CA " is carbon, "CA  " calcium).
std::string atom_name_field(const std::string& name, const std::string& element) {
  if (name.size() < 4 && element.size() < 2) return fmt::format(" {:<3}", name);
  return fmt::format("{:<4}", name);
}

// %8.3f leaves room for -999.999 to 9999.999; anything else would shift the columns.
bool fits_columns(double v) { return std::isfinite(v) && v > -999.9995 && v < 9999.9995; }

double parse_column(const std::string& line, size_t first, const std::string& path, int64_t line_number) {
  const std::string text = line.substr(first, 8);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  check(end != text.c_str(), fmt::format("{}:{}: cannot read coordinate '{}' (columns 31-54 must hold "
                                         "x, y, z)",
                                         path, line_number, text));
  return value;
}

}  // namespace

void write_pdb_models(const std::string& path, const torch::Tensor& positions_angstrom,
                      const ParticleNames& names, const std::vector<std::string>& remarks) {
  const auto& x0 = positions_angstrom;
  check(x0.dim() == 3 && (x0.size(2) == 2 || x0.size(2) == 3),
        "write_pdb_models needs positions of shape (frames, atoms, 2 or 3)");
  const int64_t frames = x0.size(0), atoms = x0.size(1);
  check(static_cast<int64_t>(names.atom_names.size()) == atoms &&
            names.residue_names.size() == names.atom_names.size() &&
            names.elements.size() == names.atom_names.size() &&
            names.residue_numbers.size() == names.atom_names.size(),
        "write_pdb_models needs a name, residue and element for every atom");
  check(static_cast<int64_t>(remarks.size()) == frames, "write_pdb_models needs one remark per frame");
  check(atoms <= 99999, fmt::format("a PDB file holds at most 99999 atoms, not {}", atoms));
  auto x = x0.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const auto acc = x.accessor<double, 3>();

  // The ATOM records without coordinates are the same in every model.
  std::vector<std::string> heads, tails;
  for (int64_t i = 0; i < atoms; ++i) {
    const auto k = static_cast<size_t>(i);
    check(names.atom_names[k].size() <= 4 && names.residue_names[k].size() <= 3 &&
              names.elements[k].size() <= 2 && names.residue_numbers[k] >= 0 && names.residue_numbers[k] <= 9999,
          fmt::format("atom {} ('{}' in residue '{}' {}) does not fit the PDB columns", i,
                      names.atom_names[k], names.residue_names[k], names.residue_numbers[k]));
    heads.push_back(fmt::format("ATOM  {:>5} {} {:>3} A{:>4}    ", i + 1,
                                atom_name_field(names.atom_names[k], names.elements[k]),
                                names.residue_names[k], names.residue_numbers[k]));
    tails.push_back(fmt::format("  1.00  0.00          {:>2}\n", names.elements[k]));
  }
  std::string text;
  for (int64_t f = 0; f < frames; ++f) {
    if (!remarks[static_cast<size_t>(f)].empty())
      text += fmt::format("REMARK   1 {}\n", remarks[static_cast<size_t>(f)]);
    text += fmt::format("MODEL     {:>4}\n", f + 1);
    for (int64_t i = 0; i < atoms; ++i) {
      const double xyz[3] = {acc[f][i][0], acc[f][i][1], x.size(2) == 3 ? acc[f][i][2] : 0.0};
      for (double v : xyz)
        check(fits_columns(v), fmt::format("cannot write '{}': frame {} (0-based) has coordinate {} Angstrom, "
                                           "outside the PDB range -999.999 to 9999.999; write .dcd or .xyz",
                                           path, f, v));
      text += heads[static_cast<size_t>(i)];
      text += fmt::format("{:8.3f}{:8.3f}{:8.3f}", xyz[0], xyz[1], xyz[2]);
      text += tails[static_cast<size_t>(i)];
    }
    text += "TER\nENDMDL\n";
  }
  text += "END\n";
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

torch::Tensor read_pdb_models(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), fmt::format("cannot open PDB file '{}': check the path", path));
  std::vector<double> values;
  int64_t frames = 0, atoms = -1, in_model = 0, line_number = 0;
  bool open_model = false;
  auto close_model = [&] {
    if (!open_model) return;
    check(atoms < 0 || in_model == atoms,
          fmt::format("{}: model {} has {} atoms but the first has {}; all models must have the same atoms",
                      path, frames + 1, in_model, atoms));
    atoms = in_model;
    ++frames;
    in_model = 0;
    open_model = false;
  };
  std::string line;
  while (std::getline(in, line)) {
    ++line_number;
    const std::string record = line.substr(0, 6);
    if (record == "MODEL " || record == "ENDMDL" || record == "END" || record == "END   ") {
      close_model();
    } else if (record == "ATOM  " || record == "HETATM") {
      check(line.size() >= 54, fmt::format("{}:{}: ATOM record is {} characters long; it needs the "
                                           "coordinates in columns 31-54",
                                           path, line_number, line.size()));
      for (size_t c = 0; c < 3; ++c) values.push_back(parse_column(line, 30 + 8 * c, path, line_number));
      ++in_model;
      open_model = true;
    }
  }
  close_model();
  check(frames > 0, fmt::format("PDB file '{}' has no ATOM or HETATM records", path));
  return torch::tensor(values, torch::kFloat64).reshape({frames, atoms, 3});
}

}  // namespace mintjulep
