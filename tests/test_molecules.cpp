// Molecular energies against OpenMM's Reference platform (the oracle), term by term, plus
// the soft-core path and the errors of the OpenMM import.
#include <mintjulep/error.hpp>
#include <mintjulep/force_field.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/systems.hpp>

#include <OpenMM.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>

namespace mintjulep {
namespace {

std::string data_file(const std::string& name) { return data_dir() + "/alanine-dipeptide/" + name; }

std::unique_ptr<OpenMM::System> load_openmm_system(const std::string& path) {
  std::ifstream in(path);
  return std::unique_ptr<OpenMM::System>(OpenMM::XmlSerializer::deserialize<OpenMM::System>(in));
}

// The force group OpenMM evaluates each of our terms in.
const std::map<std::string, int> kTermGroup = {
    {"bonds", 0}, {"angles", 1}, {"torsions", 2}, {"nonbonded", 3}, {"born", 4}};

int group_of(const OpenMM::Force& force) {
  if (dynamic_cast<const OpenMM::HarmonicBondForce*>(&force)) return 0;
  if (dynamic_cast<const OpenMM::HarmonicAngleForce*>(&force)) return 1;
  if (dynamic_cast<const OpenMM::PeriodicTorsionForce*>(&force)) return 2;
  if (dynamic_cast<const OpenMM::NonbondedForce*>(&force)) return 3;
  if (dynamic_cast<const OpenMM::GBSAOBCForce*>(&force)) return 4;
  return 5;
}

// 100 configurations: the PDB structure with Gaussian noise of 0.01-0.03 nm per coordinate.
torch::Tensor perturbed_configurations(const MolecularEnergy& molecule, int64_t count) {
  torch::manual_seed(7);
  auto x0 = molecule.reference_configuration();
  auto scale = torch::linspace(0.01, 0.03, count, torch::kFloat64).reshape({count, 1, 1});
  return x0 + scale * torch::randn({count, x0.size(1), 3}, torch::kFloat64);
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

struct OpenMMTerms {
  std::map<std::string, double> energy;                  // kJ/mol
  std::map<std::string, std::vector<OpenMM::Vec3>> forces;
};

class OpenMMReference {
 public:
  explicit OpenMMReference(const std::string& xml) : system_(load_openmm_system(xml)) {
    for (int k = 0; k < system_->getNumForces(); ++k)
      system_->getForce(k).setForceGroup(group_of(system_->getForce(k)));
    integrator_ = std::make_unique<OpenMM::VerletIntegrator>(0.001);
    context_ = std::make_unique<OpenMM::Context>(*system_, *integrator_,
                                                 OpenMM::Platform::getPlatformByName("Reference"));
  }
  OpenMMTerms evaluate(const torch::Tensor& x) {  // x: (N, 3) nm
    std::vector<OpenMM::Vec3> positions;
    auto a = x.accessor<double, 2>();
    for (int64_t i = 0; i < x.size(0); ++i) positions.emplace_back(a[i][0], a[i][1], a[i][2]);
    context_->setPositions(positions);
    OpenMMTerms result;
    for (const auto& [name, group] : kTermGroup) {
      auto state = context_->getState(OpenMM::State::Energy | OpenMM::State::Forces, false, 1 << group);
      result.energy[name] = state.getPotentialEnergy();
      result.forces[name] = state.getForces();
    }
    return result;
  }

 private:
  std::unique_ptr<OpenMM::System> system_;
  std::unique_ptr<OpenMM::VerletIntegrator> integrator_;
  std::unique_ptr<OpenMM::Context> context_;
};

class AgainstOpenMM : public ::testing::TestWithParam<std::string> {};

TEST_P(AgainstOpenMM, EnergiesAndForcesMatchTermByTerm) {
  const std::string system_name = GetParam();
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(make_system(system_name));
  ASSERT_NE(molecule, nullptr);
  const std::string xml = data_file(system_name == "ala2" ? "amber99sbildn-vacuum.xml"
                                                          : "amber99sbildn-obc.xml");
  OpenMMReference reference(xml);
  const int64_t count = 100;
  auto x = perturbed_configurations(*molecule, count).requires_grad_(true);
  auto terms = molecule->term_energies(x);
  EXPECT_EQ(terms.size(), system_name == "ala2" ? 4u : 5u);

  std::map<std::string, torch::Tensor> forces;
  for (const auto& [name, energy] : terms) {
    forces[name] = -torch::autograd::grad({energy.sum()}, {x}, {}, /*retain_graph=*/true)[0];
  }
  double worst_energy = 0.0, worst_force = 0.0;
  for (int64_t b = 0; b < count; ++b) {
    auto ref = reference.evaluate(x[b].detach());
    for (const auto& [name, energy] : terms) {
      const double ours = energy[b].item<double>();
      const double theirs = ref.energy.at(name);
      const double tolerance = std::max(1e-6 * std::abs(theirs), 1e-5);
      ASSERT_NEAR(ours, theirs, tolerance) << name << ", configuration " << b;
      worst_energy = std::max(worst_energy, std::abs(ours - theirs) / tolerance);
      const torch::Tensor force_b = forces[name][b].contiguous();
      auto f = force_b.accessor<double, 2>();
      for (int64_t i = 0; i < x.size(1); ++i)
        for (int c = 0; c < 3; ++c) {
          const double diff = std::abs(f[i][c] - ref.forces.at(name)[i][c]);
          ASSERT_LT(diff, 1e-4) << name << ", configuration " << b << ", atom " << i;
          worst_force = std::max(worst_force, diff);
        }
    }
  }
  std::ostringstream summary;
  summary << std::scientific << worst_energy << " of the tolerance (energy), " << worst_force
          << " kJ/mol/nm (force)";
  RecordProperty("worst_errors", summary.str());
}

TEST_P(AgainstOpenMM, TotalEnergyIsInKT) {
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(make_system(GetParam()));
  auto hot = std::dynamic_pointer_cast<MolecularEnergy>(make_system(GetParam(), {400.0}));
  auto x = perturbed_configurations(*molecule, 3);
  auto terms = molecule->term_energies(x);
  auto sum = terms[0].second;
  for (size_t k = 1; k < terms.size(); ++k) sum = sum + terms[k].second;
  EXPECT_LT(max_abs(molecule->energy(x) - sum / (0.0083144626 * 300.0)), 1e-9);
  EXPECT_LT(max_abs(hot->energy(x) - sum / (0.0083144626 * 400.0)), 1e-9);
}

INSTANTIATE_TEST_SUITE_P(Ala2, AgainstOpenMM, ::testing::Values("ala2", "ala2-implicit"),
                         [](const auto& info) {
                           return info.param == "ala2" ? std::string("Vacuum") : std::string("Implicit");
                         });

// --- the soft-core path ------------------------------------------------------------------

TEST(MolecularPath, BondedTermsIgnoreTAndNonbondedPairsUseSoftenedDistance) {
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(make_system("ala2"));
  auto x = perturbed_configurations(*molecule, 4);
  const double t = 0.4;
  auto at_one = molecule->term_energies(x, 1.0);
  auto at_t = molecule->term_energies(x, t);
  for (size_t k = 0; k < 3; ++k) {  // bonds, angles, torsions
    EXPECT_EQ(at_t[k].first, at_one[k].first);
    EXPECT_LT(max_abs(at_t[k].second - at_one[k].second), 1e-12) << at_t[k].first;
  }
  // Independent per-pair loop over the force field's nonbonded list.
  const auto& ff = molecule->force_field();
  auto xa = x.accessor<double, 3>();
  for (int64_t b = 0; b < x.size(0); ++b) {
    double expected = 0.0;
    for (const auto& p : ff.nonbonded) {
      double r2 = 0;
      for (int c = 0; c < 3; ++c) r2 += std::pow(xa[b][p.i][c] - xa[b][p.j][c], 2);
      const double rm = std::pow(2.0, 1.0 / 6.0) * p.sigma;
      const double rs = std::sqrt(r2) + rm * (1.0 - t);
      const double lj = p.epsilon * (std::pow(std::pow(rs / rm, -6) - std::pow(2.0 - t, -6), 2) -
                                     std::pow(2.0 - t, -12));
      expected += lj + coulomb_constant() * p.charge_product / rs;
    }
    EXPECT_NEAR(at_t[3].second[b].item<double>(), expected, 1e-9 * std::abs(expected));
  }
}

TEST(MolecularPath, OverlappingAtomsStayFiniteBeforeTheEnd) {
  for (const std::string name : {"ala2", "ala2-implicit"}) {
    auto molecule = make_system(name);
    auto x = molecule->reference_configuration().clone();
    x[0][20] = x[0][0] + 1e-5;  // two atoms almost on top of each other
    auto xg = x.clone().requires_grad_(true);
    auto v = molecule->energy(xg, 0.5);
    auto g = torch::autograd::grad({v.sum()}, {xg})[0];
    EXPECT_TRUE(std::isfinite(v.item<double>())) << name;
    EXPECT_LT(std::abs(v.item<double>()), 1e5) << name;  // softened: no r^-12 blow-up
    EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << name;
    EXPECT_GT(molecule->energy(x, 1.0).item<double>(), 1e20) << name;  // the true energy
  }
}

TEST(MolecularEnergy, Float32AgreesWithFloat64) {
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(make_system("ala2-implicit"));
  auto x = perturbed_configurations(*molecule, 8);
  auto e64 = molecule->energy(x);
  auto e32 = molecule->energy(x.to(torch::kFloat32)).to(torch::kFloat64);
  EXPECT_LT(max_abs((e32 - e64) / e64.abs().clamp_min(1.0)), 1e-5);
}

TEST(MolecularEnergy, TopologyDefaultsForAlanineDipeptide) {
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(make_system("ala2"));
  EXPECT_EQ(molecule->num_particles(), 22);
  EXPECT_EQ(molecule->default_anchor(), 8);  // CA
  const auto frame = molecule->default_frame(8);
  ASSERT_EQ(frame.size(), 2u);
  EXPECT_EQ(molecule->topology().atoms[frame[0]].name, "N");  // heaviest atom bonded to CA
  EXPECT_EQ(molecule->topology().atoms[frame[1]].element, "C");
  const auto types = molecule->particle_types();
  EXPECT_EQ(types[0], types[2]);  // the methyl hydrogens of ACE are one type
  EXPECT_NE(types[0], types[1]);
}

// --- errors of the import ------------------------------------------------------------------

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

std::string serialized(const OpenMM::System& system) {
  std::stringstream s;
  OpenMM::XmlSerializer::serialize<OpenMM::System>(&system, "System", s);
  return s.str();
}

void expect_error_containing(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(OpenMMImport, UnsupportedInputIsAClearError) {
  auto base = load_openmm_system(data_file("amber99sbildn-vacuum.xml"));
  {
    auto s = load_openmm_system(data_file("amber99sbildn-vacuum.xml"));
    s->addForce(new OpenMM::CustomBondForce("k*r^2"));
    auto path = write_temp("custom.xml", serialized(*s));
    expect_error_containing([&] { read_openmm_system(path); }, "CustomBondForce");
  }
  {
    auto s = load_openmm_system(data_file("amber99sbildn-vacuum.xml"));
    s->addConstraint(0, 1, 0.109);
    auto path = write_temp("constrained.xml", serialized(*s));
    expect_error_containing([&] { read_openmm_system(path); }, "constraints=None");
  }
  {
    auto s = load_openmm_system(data_file("amber99sbildn-vacuum.xml"));
    for (int k = 0; k < s->getNumForces(); ++k)
      if (auto* nb = dynamic_cast<OpenMM::NonbondedForce*>(&s->getForce(k)))
        nb->setNonbondedMethod(OpenMM::NonbondedForce::CutoffNonPeriodic);
    auto path = write_temp("cutoff.xml", serialized(*s));
    expect_error_containing([&] { read_openmm_system(path); }, "NoCutoff");
  }
  expect_error_containing([] { read_openmm_system("/nonexistent/system.xml"); }, "cannot open");
  auto junk = write_temp("junk.xml", "<NotASystem/>");
  expect_error_containing([&] { read_openmm_system(junk); }, "not a serialized OpenMM System");
  auto short_pdb = write_temp("short.pdb",
      "ATOM      1  CA  ALA A   1       0.000   0.000   0.000  1.00  0.00           C\n");
  expect_error_containing(
      [&] { make_molecule("m", data_file("amber99sbildn-vacuum.xml"), short_pdb); },
      "same molecule");
  expect_error_containing([] { make_system("openmm:only-one-part.xml"); }, "openmm:SYSTEM.xml");
  expect_error_containing([] { make_system("lj13", {300.0}); }, "only to molecular systems");
}

// Inputs from the fuzz harnesses (fuzz/): OpenMM's XmlSerializer accepts particle indices
// that name no particle and non-finite parameters, which would index out of bounds or turn
// every energy into NaN later; the import rejects them.
TEST(OpenMMImport, ParticleIndicesAndParametersAreChecked) {
  auto edited = [](const std::function<void(OpenMM::System&)>& edit) {
    auto s = load_openmm_system(data_file("amber99sbildn-obc.xml"));
    edit(*s);
    return write_temp("edited.xml", serialized(*s));
  };
  auto force = [](OpenMM::System& s, auto* type) {
    for (int k = 0; k < s.getNumForces(); ++k)
      if (auto* f = dynamic_cast<decltype(type)>(&s.getForce(k))) return f;
    throw std::logic_error("force not found");
  };
  const auto bond = static_cast<OpenMM::HarmonicBondForce*>(nullptr);
  const auto angle = static_cast<OpenMM::HarmonicAngleForce*>(nullptr);
  const auto torsion = static_cast<OpenMM::PeriodicTorsionForce*>(nullptr);
  const auto nonbonded = static_cast<OpenMM::NonbondedForce*>(nullptr);
  const auto born = static_cast<OpenMM::GBSAOBCForce*>(nullptr);
  const std::vector<std::pair<std::function<void(OpenMM::System&)>, std::string>> cases = {
      {[&](OpenMM::System& s) { force(s, bond)->addBond(0, 22, 0.1, 1000); },
       "HarmonicBondForce term 21 names particle 22, but the System has 22 particles"},
      {[&](OpenMM::System& s) { force(s, bond)->addBond(3, 3, 0.1, 1000); }, "names particle 3 twice"},
      {[&](OpenMM::System& s) { force(s, angle)->addAngle(-1, 0, 1, 1.9, 100); }, "names particle -1"},
      {[&](OpenMM::System& s) { force(s, torsion)->addTorsion(0, 1, 2, 40, 3, 0, 1); }, "names particle 40"},
      {[&](OpenMM::System& s) { force(s, nonbonded)->addException(5, 99, 0, 1, 0); },
       "NonbondedForce exception term"},
      {[&](OpenMM::System& s) { force(s, bond)->setBondParameters(0, 4, 1, NAN, 1000); },
       "non-finite parameter nan"},
      {[&](OpenMM::System& s) { force(s, nonbonded)->setParticleParameters(2, 0.1, 0.3, INFINITY); },
       "non-finite parameter inf"},
      {[&](OpenMM::System& s) { force(s, nonbonded)->setParticleParameters(2, 0.1, 0.3, -0.5); },
       "epsilon -0.5 < 0"},
      {[&](OpenMM::System& s) { force(s, born)->setParticleParameters(0, 0.1, NAN, 0.8); },
       "GBSAOBCForce particle term 0 has a non-finite parameter"},
      {[&](OpenMM::System& s) { force(s, born)->setSolventDielectric(-78.5); }, "positive dielectric"},
      {[&](OpenMM::System& s) { s.setParticleMass(3, INFINITY); }, "positive mass"},
  };
  for (const auto& [edit, needle] : cases) {
    const std::string path = edited(edit);
    expect_error_containing([&] { read_openmm_system(path); }, needle);
  }
  // OpenMM's irrXML reader runs past the end of its buffer on a truncated file (a crash), and
  // OpenMM casts whatever object the "type" attributes name to a System or a Force (a heap
  // overflow, or a crash in ~System): both are caught before OpenMM sees the text.
  std::ifstream in(data_file("amber99sbildn-vacuum.xml"));
  const std::string xml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t cut : {xml.find("<Particle ") + 5, xml.find("<Bond ") + 3, xml.rfind("</System") + 4}) {
    const auto path = write_temp("truncated.xml", xml.substr(0, cut));
    expect_error_containing([&] { read_openmm_system(path); }, "truncated");
  }
  const auto comment = write_temp("comment.xml", "<!-- <<< -->" + xml);
  expect_error_containing([&] { read_openmm_system(comment); }, "truncated");
  auto replaced = [&](const std::string& from, const std::string& to) {
    return std::string(xml).replace(xml.find(from), from.size(), to);
  };
  const auto root_path = write_temp("root.xml", replaced("type=\"System\"", "type=\"HarmonicBondForce\""));
  expect_error_containing([&] { read_openmm_system(root_path); }, "first element has type 'HarmonicBondForce'");
  const auto nested_path = write_temp("nested.xml", replaced("type=\"HarmonicAngleForce\"", "type=\"System\""));
  expect_error_containing([&] { read_openmm_system(nested_path); }, "force 'System' is not supported");
  std::string open, close;
  for (int i = 0; i < 40; ++i) open += "<a>", close += "</a>";
  const auto deep_path = write_temp("deep.xml", replaced("<Constraints", open + close + "<Constraints"));
  expect_error_containing([&] { read_openmm_system(deep_path); }, "nests too deeply");
  EXPECT_EQ(read_openmm_system(data_file("amber99sbildn-vacuum.xml")).num_particles(), 22);

  // OpenMM's own parse errors are quoted on one line.
  auto broken = write_temp("broken.xml", "<System openmmVersion=\"7.7\" type=\"System\" version=\"1\">\n<Particles>");
  try {
    read_openmm_system(broken);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

TEST(Pdb, NonFiniteCoordinatesAreErrors) {
  const std::string atom = "ATOM      1  CA  ALA A   1       0.000   0.000   0.000  1.00  0.00           C\n";
  for (const std::string x : {"     nan", "     inf", "  -1e999", "  0.0\x01 "}) {
    std::string line = atom;
    line.replace(30, 8, x);
    const auto path = write_temp("coordinate.pdb", line);
    expect_error_containing([&] { read_pdb(path); }, "must hold finite x, y, z");
  }
  const auto path = write_temp("control.pdb", std::string(atom).replace(30, 8, "  0.0\x01 "));
  expect_error_containing([&] { read_pdb(path); }, "'0.0\\x01'");
}

}  // namespace
}  // namespace mintjulep
