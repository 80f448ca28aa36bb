// Reading OpenMM Systems. This is the only translation unit of the library that includes
// OpenMM; it produces plain parameter tables (force_field.hpp) and never touches tensors.
#include <mintjulep/error.hpp>
#include <mintjulep/force_field.hpp>

#include <OpenMM.h>
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <utility>

namespace mintjulep {

double coulomb_constant() {
  // OpenMM's ONE_4PI_EPS0 from the 2019 SI constants (SimTKOpenMMRealType.h).
  const double e_charge = 1.602176634e-19, avogadro = 6.02214076e23;
  const double epsilon0 = 1e-6 * 8.8541878128e-12 / (e_charge * e_charge * avogadro);
  return 1.0 / (4.0 * M_PI * epsilon0);
}

namespace {

std::string force_name(const OpenMM::Force& force) {
  if (!force.getName().empty()) return force.getName();
  return "unnamed force";
}

void read_bonds(const OpenMM::HarmonicBondForce& f, ForceField& ff) {
  check(!f.usesPeriodicBoundaryConditions(),
        "HarmonicBondForce uses periodic boundary conditions; only non-periodic molecules are supported");
  for (int b = 0; b < f.getNumBonds(); ++b) {
    int i, j;
    double length, k;
    f.getBondParameters(b, i, j, length, k);
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
  for (int i = 0; i < n; ++i) f.getParticleParameters(i, charge[i], sigma[i], epsilon[i]);
  ff.sigma = sigma;

  std::set<std::pair<int64_t, int64_t>> excluded;
  for (int e = 0; e < f.getNumExceptions(); ++e) {
    int i, j;
    double qq, s, eps;
    f.getExceptionParameters(e, i, j, qq, s, eps);
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
  for (int i = 0; i < n; ++i) f.getParticleParameters(i, gb.charge[i], gb.radius[i], gb.scale[i]);
  gb.solute_dielectric = f.getSoluteDielectric();
  gb.solvent_dielectric = f.getSolventDielectric();
  gb.surface_area_energy = f.getSurfaceAreaEnergy();
}

}  // namespace

ForceField read_openmm_system(const std::string& xml_path) {
  std::ifstream in(xml_path);
  check(in.good(), fmt::format("cannot open OpenMM System file '{}': check the path", xml_path));
  std::unique_ptr<OpenMM::System> system;
  try {
    system.reset(OpenMM::XmlSerializer::deserialize<OpenMM::System>(in));
  } catch (const std::exception& e) {
    throw Error(fmt::format("'{}' is not a serialized OpenMM System: {}", xml_path, e.what()));
  }
  check(system != nullptr, fmt::format("'{}' is not a serialized OpenMM System", xml_path));

  ForceField ff;
  const int n = system->getNumParticles();
  check(n >= 2, fmt::format("'{}' has {} particles; a molecule needs at least 2", xml_path, n));
  for (int i = 0; i < n; ++i) {
    check(!system->isVirtualSite(i),
          fmt::format("'{}': particle {} is a virtual site, which is not supported", xml_path, i));
    ff.masses.push_back(system->getParticleMass(i));
    check(ff.masses.back() > 0.0,
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
