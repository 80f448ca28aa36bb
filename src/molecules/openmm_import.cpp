// Reading OpenMM Systems. This is the only translation unit of the library that includes
// OpenMM; it produces plain parameter tables (force_field.hpp) and never touches tensors.
#include <mintjulep/error.hpp>
#include <mintjulep/force_field.hpp>

#include <OpenMM.h>
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <utility>

#include "core/printable.hpp"

namespace mintjulep {

double coulomb_constant() {
  // OpenMM's ONE_4PI_EPS0 from the 2019 SI constants (SimTKOpenMMRealType.h).
  const double e_charge = 1.602176634e-19, avogadro = 6.02214076e23;
  const double epsilon0 = 1e-6 * 8.8541878128e-12 / (e_charge * e_charge * avogadro);
  return 1.0 / (4.0 * M_PI * epsilon0);
}

namespace {

std::string force_name(const OpenMM::Force& force) {
  if (!force.getName().empty()) return printable(force.getName());
  return "unnamed force";
}

// The particles of one term of a force must be particles of the System, each named once.
void check_particles(const char* force, int term, std::initializer_list<int> particles, int64_t n) {
  for (auto it = particles.begin(); it != particles.end(); ++it) {
    check(*it >= 0 && *it < n, fmt::format("{} term {} names particle {}, but the System has {} "
                                           "particles",
                                           force, term, *it, n));
    for (auto before = particles.begin(); before != it; ++before)
      check(*before != *it, fmt::format("{} term {} names particle {} twice", force, term, *it));
  }
}

void check_finite(const char* force, int term, std::initializer_list<double> parameters) {
  for (double p : parameters)
    check(std::isfinite(p), fmt::format("{} term {} has a non-finite parameter {}", force, term, p));
}

void read_bonds(const OpenMM::HarmonicBondForce& f, ForceField& ff) {
  check(!f.usesPeriodicBoundaryConditions(),
        "HarmonicBondForce uses periodic boundary conditions; only non-periodic molecules are supported");
  for (int b = 0; b < f.getNumBonds(); ++b) {
    int i, j;
    double length, k;
    f.getBondParameters(b, i, j, length, k);
    check_particles("HarmonicBondForce", b, {i, j}, ff.num_particles());
    check_finite("HarmonicBondForce", b, {length, k});
    ff.bonds.push_back({i, j, length, k});
  }
}

void read_angles(const OpenMM::HarmonicAngleForce& f, ForceField& ff) {
  check(!f.usesPeriodicBoundaryConditions(),
        "HarmonicAngleForce uses periodic boundary conditions; only non-periodic molecules are supported");
  for (int a = 0; a < f.getNumAngles(); ++a) {
    int i, j, k;
    double angle, k_theta;
    f.getAngleParameters(a, i, j, k, angle, k_theta);
    check_particles("HarmonicAngleForce", a, {i, j, k}, ff.num_particles());
    check_finite("HarmonicAngleForce", a, {angle, k_theta});
    ff.angles.push_back({i, j, k, angle, k_theta});
  }
}

void read_torsions(const OpenMM::PeriodicTorsionForce& f, ForceField& ff) {
  check(!f.usesPeriodicBoundaryConditions(),
        "PeriodicTorsionForce uses periodic boundary conditions; only non-periodic molecules are supported");
  for (int a = 0; a < f.getNumTorsions(); ++a) {
    int i, j, k, l, periodicity;
    double phase, k_phi;
    f.getTorsionParameters(a, i, j, k, l, periodicity, phase, k_phi);
    check_particles("PeriodicTorsionForce", a, {i, j, k, l}, ff.num_particles());
    check_finite("PeriodicTorsionForce", a, {phase, k_phi});
    if (k_phi != 0.0) ff.torsions.push_back({i, j, k, l, periodicity, phase, k_phi});
  }
}

void read_nonbonded(const OpenMM::NonbondedForce& f, ForceField& ff) {
  check(f.getNonbondedMethod() == OpenMM::NonbondedForce::NoCutoff,
        "NonbondedForce uses a cutoff or periodic method; create the System with "
        "nonbondedMethod=NoCutoff (the only method supported)");
  check(f.getNumGlobalParameters() == 0 && f.getNumParticleParameterOffsets() == 0 &&
            f.getNumExceptionParameterOffsets() == 0,
        "NonbondedForce has global parameters or parameter offsets, which are not supported");
  const int n = f.getNumParticles();
  check(n == ff.num_particles(),
        fmt::format("NonbondedForce has {} particles but the System has {}", n, ff.num_particles()));
  std::vector<double> charge(n), sigma(n), epsilon(n);
  for (int i = 0; i < n; ++i) {
    f.getParticleParameters(i, charge[i], sigma[i], epsilon[i]);
    check_finite("NonbondedForce particle", i, {charge[i], sigma[i], epsilon[i]});
    check(epsilon[i] >= 0.0, fmt::format("NonbondedForce particle {} has epsilon {} < 0", i, epsilon[i]));
  }
  ff.sigma = sigma;

  std::set<std::pair<int64_t, int64_t>> excluded;
  for (int e = 0; e < f.getNumExceptions(); ++e) {
    int i, j;
    double qq, s, eps;
    f.getExceptionParameters(e, i, j, qq, s, eps);
    check_particles("NonbondedForce exception", e, {i, j}, n);
    check_finite("NonbondedForce exception", e, {qq, s, eps});
    excluded.insert({std::min(i, j), std::max(i, j)});
    if (qq != 0.0 || eps != 0.0) ff.nonbonded.push_back({std::min(i, j), std::max(i, j), qq, s, eps});
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) {
      if (excluded.count({i, j})) continue;
      const double qq = charge[i] * charge[j];
      const double eps = std::sqrt(epsilon[i] * epsilon[j]);
      if (qq == 0.0 && eps == 0.0) continue;
      ff.nonbonded.push_back({i, j, qq, 0.5 * (sigma[i] + sigma[j]), eps});
    }
  }
}

void read_born(const OpenMM::GBSAOBCForce& f, ForceField& ff) {
  check(f.getNonbondedMethod() == OpenMM::GBSAOBCForce::NoCutoff,
        "GBSAOBCForce uses a cutoff or periodic method; create the System with "
        "nonbondedMethod=NoCutoff (the only method supported)");
  const int n = f.getNumParticles();
  check(n == ff.num_particles(),
        fmt::format("GBSAOBCForce has {} particles but the System has {}", n, ff.num_particles()));
  auto& gb = ff.born;
  gb.present = true;
  gb.charge.resize(n);
  gb.radius.resize(n);
  gb.scale.resize(n);
  for (int i = 0; i < n; ++i) {
    f.getParticleParameters(i, gb.charge[i], gb.radius[i], gb.scale[i]);
    check_finite("GBSAOBCForce particle", i, {gb.charge[i], gb.radius[i], gb.scale[i]});
  }
  gb.solute_dielectric = f.getSoluteDielectric();
  gb.solvent_dielectric = f.getSolventDielectric();
  gb.surface_area_energy = f.getSurfaceAreaEnergy();
  check(std::isfinite(gb.solute_dielectric) && gb.solute_dielectric > 0 &&
            std::isfinite(gb.solvent_dielectric) && gb.solvent_dielectric > 0 &&
            std::isfinite(gb.surface_area_energy),
        "GBSAOBCForce needs finite, positive dielectric constants and a finite surface area energy");
}

// OpenMM reads XML with a bundled irrXML, whose scanner runs past the end of its buffer on a
// truncated or unterminated tag, comment or declaration (a crash, not an exception). This
// walks `text` the way irrXML does and returns where such a scan would run off the end, or
// where elements nest deeper than any System does (OpenMM then recurses once per level);
// std::string::npos when the text is safe to hand over. It also collects the "type"
// attributes as irrXML reads them: OpenMM builds whatever object a type names and casts it
// to the type it expects (a System for the first element, a Force inside <Forces>), so an
// unexpected type there is a type confusion inside OpenMM.
struct XmlScan {
  size_t unsafe = std::string::npos;
  std::string root_type;         // of the first element
  std::vector<std::string> types;  // of every later element that has one
};

XmlScan scan_xml(const std::string& text) {
  XmlScan scan;
  std::string& root_type = scan.root_type;
  constexpr int kMaxDepth = 32;
  const size_t n = text.size();
  auto at = [&](size_t i) { return i < n ? text[i] : '\0'; };
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  size_t p = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) p = 3;  // UTF-8 byte order mark
  int depth = 0;
  bool root_seen = false;
  while (true) {
    while (at(p) != '<' && at(p) != '\0') ++p;
    if (at(p) == '\0') return scan;  // irrXML stops at the first NUL
    const size_t tag = p++;
    scan.unsafe = tag;  // until the construct is known to end inside the text
    if (at(p) == '/' || at(p) == '?') {  // end tag or declaration: up to '>'
      if (at(p) == '/') --depth;
      p = text.find('>', p);
      if (p == std::string::npos) return scan;
      ++p;
    } else if (at(p) == '!' && at(p + 1) == '[') {  // CDATA: bounded by the NUL terminator
      for (int skipped = 0; skipped < 8 && at(p) != '\0'; ++skipped) ++p;
      while (at(p) != '\0' && !(at(p) == '>' && at(p - 1) == ']' && at(p - 2) == ']')) ++p;
      if (at(p) == '\0') break;
      ++p;
    } else if (at(p) == '!') {  // comment: nested '<' and '>' are counted
      const size_t begin = ++p;
      for (int count = 1; count > 0; ++p) {
        if (p >= n) return scan;
        if (text[p] == '>') --count;
        if (text[p] == '<') ++count;
      }
      if (p < begin + 5) return scan;  // irrXML would take a negative length
    } else {  // element: name, then attributes up to '>' or "/"
      bool empty = false, typed = false, stopped = false;
      std::string type;
      while (at(p) != '>' && !space(at(p))) {
        if (p >= n) return scan;
        ++p;
      }
      if (p > tag + 1 && text[p - 1] == '/') empty = true;
      while (at(p) != '>') {
        if (p >= n) return scan;
        if (space(text[p])) {
          ++p;
        } else if (text[p] != '/') {
          const size_t name = p;
          while (!space(at(p)) && at(p) != '=') {
            if (p >= n) return scan;
            ++p;
          }
          const size_t name_end = p++;
          while (at(p) != '"' && at(p) != '\'' && at(p) != '\0') ++p;
          stopped = at(p) == '\0';  // irrXML returns here, and then stops at the NUL
          if (stopped) break;
          const char quote = text[p++];
          const size_t value = p;
          while (at(p) != quote && at(p) != '\0') ++p;
          stopped = at(p) == '\0';
          if (stopped) break;
          if (text.compare(name, name_end - name, "type") == 0) {
            typed = true;
            type = text.substr(value, p - value);
          }
          ++p;
        } else {
          ++p;
          empty = true;
          break;
        }
      }
      p = stopped ? n : p + 1;
      if (!root_seen) {
        root_type = type;
        root_seen = true;
      } else if (typed) {
        scan.types.push_back(type);
      }
      if (!empty && ++depth > kMaxDepth) return scan;
    }
    scan.unsafe = std::string::npos;
  }
  scan.unsafe = std::string::npos;
  return scan;
}

}  // namespace

ForceField read_openmm_system(const std::string& xml_path) {
  std::ifstream file(xml_path, std::ios::binary);
  check(file.good(), fmt::format("cannot open OpenMM System file '{}': check the path", xml_path));
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  check(text.compare(0, 2, "\xFE\xFF") != 0 && text.compare(0, 2, "\xFF\xFE") != 0 &&
            text.compare(0, 4, std::string("\0\0\xFE\xFF", 4)) != 0,
        fmt::format("'{}' is UTF-16 or UTF-32 text; save the OpenMM System as UTF-8", xml_path));
  const XmlScan scan = scan_xml(text);
  check(scan.unsafe == std::string::npos,
        fmt::format("'{}' is not a serialized OpenMM System: the XML is truncated, has an "
                    "unterminated tag or nests too deeply at byte {}",
                    xml_path, scan.unsafe));
  check(scan.root_type == "System",
        fmt::format("'{}' is not a serialized OpenMM System: its first element has type '{}'",
                    xml_path, printable(scan.root_type)));
  // Every other typed element is a force or a virtual site (which SystemProxy reads by name).
  static const std::set<std::string> kKnownTypes = {
      "HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce",
      "GBSAOBCForce", "CMMotionRemover", "TwoParticleAverageSite", "ThreeParticleAverageSite",
      "OutOfPlaneSite", "LocalCoordinatesSite"};
  for (const std::string& type : scan.types)
    check(kKnownTypes.count(type) > 0,
          fmt::format("'{}': force '{}' is not supported (supported: HarmonicBondForce, "
                      "HarmonicAngleForce, PeriodicTorsionForce, NonbondedForce, GBSAOBCForce, "
                      "CMMotionRemover)",
                      xml_path, printable(type)));
  std::istringstream in(text);
  std::unique_ptr<OpenMM::System> system;
  try {
    system.reset(OpenMM::XmlSerializer::deserialize<OpenMM::System>(in));
  } catch (const std::exception& e) {
    throw Error(fmt::format("'{}' is not a serialized OpenMM System: {}", xml_path,
                            printable(e.what(), 200)));
  }
  check(system != nullptr, fmt::format("'{}' is not a serialized OpenMM System", xml_path));

  ForceField ff;
  const int n = system->getNumParticles();
  check(n >= 2, fmt::format("'{}' has {} particles; a molecule needs at least 2", xml_path, n));
  for (int i = 0; i < n; ++i) {
    check(!system->isVirtualSite(i),
          fmt::format("'{}': particle {} is a virtual site, which is not supported", xml_path, i));
    ff.masses.push_back(system->getParticleMass(i));
    check(std::isfinite(ff.masses.back()) && ff.masses.back() > 0.0,
          fmt::format("'{}': particle {} has mass {}; every particle needs a positive mass",
                      xml_path, i, ff.masses.back()));
  }
  check(system->getNumConstraints() == 0,
        fmt::format("'{}' has {} constraints; the sampler moves every atom freely, so create the "
                    "System with constraints=None",
                    xml_path, system->getNumConstraints()));

  std::map<std::string, int> seen;
  for (int k = 0; k < system->getNumForces(); ++k) {
    const OpenMM::Force& force = system->getForce(k);
    if (auto* f = dynamic_cast<const OpenMM::HarmonicBondForce*>(&force)) {
      read_bonds(*f, ff);
    } else if (auto* f = dynamic_cast<const OpenMM::HarmonicAngleForce*>(&force)) {
      read_angles(*f, ff);
    } else if (auto* f = dynamic_cast<const OpenMM::PeriodicTorsionForce*>(&force)) {
      read_torsions(*f, ff);
    } else if (auto* f = dynamic_cast<const OpenMM::NonbondedForce*>(&force)) {
      check(++seen["NonbondedForce"] == 1,
            fmt::format("'{}' has more than one NonbondedForce, which is not supported", xml_path));
      read_nonbonded(*f, ff);
    } else if (auto* f = dynamic_cast<const OpenMM::GBSAOBCForce*>(&force)) {
      check(++seen["GBSAOBCForce"] == 1,
            fmt::format("'{}' has more than one GBSAOBCForce, which is not supported", xml_path));
      read_born(*f, ff);
    } else if (dynamic_cast<const OpenMM::CMMotionRemover*>(&force)) {
      continue;  // removes centre-of-mass motion in MD; no energy
    } else {
      throw Error(fmt::format(
          "'{}': force '{}' is not supported (supported: HarmonicBondForce, HarmonicAngleForce, "
          "PeriodicTorsionForce, NonbondedForce, GBSAOBCForce, CMMotionRemover)",
          xml_path, force_name(force)));
    }
  }
  if (ff.sigma.empty()) ff.sigma.assign(static_cast<size_t>(n), 0.0);
  return ff;
}

}  // namespace mintjulep
