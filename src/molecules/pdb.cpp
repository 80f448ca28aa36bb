// A reader for the ATOM/HETATM records of PDB files (fixed columns, first model only).
#include <mintjulep/error.hpp>
#include <mintjulep/force_field.hpp>

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <fstream>

#include "core/printable.hpp"

namespace mintjulep {
namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

std::string columns(const std::string& line, size_t first, size_t last) {  // 1-based, inclusive
  if (line.size() < first) return "";
  return trim(line.substr(first - 1, last - first + 1));
}

double parse_coordinate(const std::string& text, const std::string& path, int line_number) {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size() && std::isfinite(value)) return value;
  } catch (const std::exception&) {
  }
  throw Error(fmt::format("{}:{}: cannot read coordinate '{}' (columns 31-54 must hold finite x, y, z)",
                          path, line_number, printable(text)));
}

// The element from the atom name when columns 77-78 are empty: the first letter, skipping
// leading digits (e.g. "1HB" -> H).
std::string element_from_name(const std::string& name) {
  for (char c : name)
    if (std::isalpha(static_cast<unsigned char>(c))) return std::string(1, c);
  return "";
}

}  // namespace

int64_t Topology::find_atom(const std::string& name, int64_t residue_index) const {
  for (size_t i = 0; i < atoms.size(); ++i)
    if (atoms[i].name == name && (residue_index < 0 || atoms[i].residue_index == residue_index))
      return static_cast<int64_t>(i);
  return -1;
}

Topology read_pdb(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), fmt::format("cannot open PDB file '{}': check the path", path));
  Topology top;
  std::string line, last_residue_key;
  int64_t residue_index = -1;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    const std::string record = line.substr(0, 6);
    if (record == "ENDMDL") break;
    if (record != "ATOM  " && record != "HETATM") continue;
    check(line.size() >= 54,
          fmt::format("{}:{}: ATOM record is {} characters long; it needs the coordinates in "
                      "columns 31-54",
                      path, line_number, line.size()));
    Atom atom;
    atom.name = columns(line, 13, 16);
    atom.residue_name = columns(line, 18, 20);
    const std::string residue_key = line.substr(17, 10);  // name, chain, number, insertion code
    if (residue_key != last_residue_key) {
      ++residue_index;
      last_residue_key = residue_key;
    }
    atom.residue_index = residue_index;
    atom.element = columns(line, 77, 78);
    if (atom.element.empty()) atom.element = element_from_name(atom.name);
    for (size_t c = 0; c < 3; ++c)
      top.positions_nm.push_back(
          0.1 * parse_coordinate(columns(line, 31 + 8 * c, 38 + 8 * c), path, line_number));
    top.atoms.push_back(atom);
  }
  check(!top.atoms.empty(), fmt::format("PDB file '{}' has no ATOM or HETATM records", path));
  return top;
}

}  // namespace mintjulep
