// Batched BAOAB Langevin dynamics: a closed-form harmonic check and alanine dipeptide against
// OpenMM's LangevinMiddleIntegrator (the same splitting) on the Reference platform.
#include <mintjulep/langevin.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/systems.hpp>

#include <OpenMM.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

namespace mintjulep {
namespace {

// U = 0.5 k |x|^2 (kT) for 2 particles in 3D: every coordinate has variance 1/k at kT = 1.
class HarmonicWell : public Energy {
 public:
  explicit HarmonicWell(double k) : k_(k) {}
  std::string name() const override { return "harmonic"; }
  int64_t num_particles() const override { return 2; }
  int64_t dim() const override { return 3; }
  double length_scale() const override { return 1.0; }
  torch::Tensor energy(const torch::Tensor& x, double) const override {
    return 0.5 * k_ * x.pow(2).sum({1, 2});
  }

 private:
  double k_;
};

// Mean and standard error of a (frames, replicas) series: replicas are independent, so the
// error comes from the spread of the replica means.
std::pair<double, double> mean_and_error(const torch::Tensor& series) {
  auto per_replica = series.mean(0);
  const double n = static_cast<double>(per_replica.size(0));
  return {per_replica.mean().item<double>(), per_replica.std().item<double>() / std::sqrt(n)};
}

TEST(Langevin, HarmonicWellHasTheExactVariance) {
  const double k = 4.0;
  auto energy = std::make_shared<HarmonicWell>(k);
  LangevinOptions options;
  options.timestep = 0.05;
  options.friction = 2.0;
  options.steps = 3000;
  options.report_every = 10;
  options.seed = 3;
  LangevinIntegrator md(energy, torch::tensor({1.0, 3.0}, torch::kFloat64), 1.0, options);
  auto state = md.initial_state(torch::zeros({256, 2, 3}, torch::kFloat64));
  auto frames = md.run_and_collect(state);
  ASSERT_EQ(frames.positions.size(0), 300);
  auto kept = frames.positions.narrow(0, 50, 250);  // 5 time units of burn-in
  // <x^2> = 1/k for both masses (configurational sampling does not depend on mass).
  for (int64_t particle = 0; particle < 2; ++particle) {
    auto sq = kept.select(2, particle).pow(2).mean(-1);  // (F, R)
    auto [mean, error] = mean_and_error(sq);
    EXPECT_NEAR(mean, 1.0 / k, 4.0 * error) << "particle " << particle;
    EXPECT_LT(error, 0.02 / k);  // the test has the power to see a 10% error
  }
  // Kinetic energy per degree of freedom: m <v^2> = kT, from the final velocities.
  auto kinetic = (state.velocities.pow(2) * torch::tensor({1.0, 3.0}, torch::kFloat64).reshape({1, 2, 1})).mean();
  EXPECT_NEAR(kinetic.item<double>(), 1.0, 4.0 * std::sqrt(2.0 / (256 * 6)));
}

TEST(Langevin, ResumedRunContinuesExactly) {
  auto energy = std::make_shared<HarmonicWell>(1.0);
  LangevinOptions options;
  options.timestep = 0.1;
  options.steps = 40;
  options.report_every = 10;
  LangevinIntegrator full(energy, torch::ones({2}, torch::kFloat64), 1.0, options);
  auto start = full.initial_state(torch::zeros({4, 2, 3}, torch::kFloat64));
  auto a = start;
  full.run_and_collect(a);
  options.steps = 20;
  LangevinIntegrator first_half(energy, torch::ones({2}, torch::kFloat64), 1.0, options);
  auto b = start;
  first_half.run_and_collect(b);
  ASSERT_EQ(b.step, 20);
  full.run_and_collect(b);  // resumes at step 20
  EXPECT_EQ(b.step, 40);
  EXPECT_LT((a.positions - b.positions).abs().max().item<double>(), 1e-12);
}

// A system seen only through energy(): dynamics then differentiate it with autograd.
class AutogradOnly : public Energy {
 public:
  explicit AutogradOnly(std::shared_ptr<const Energy> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  int64_t num_particles() const override { return inner_->num_particles(); }
  int64_t dim() const override { return inner_->dim(); }
  double length_scale() const override { return inner_->length_scale(); }
  torch::Tensor energy(const torch::Tensor& x, double t) const override { return inner_->energy(x, t); }

 private:
  std::shared_ptr<const Energy> inner_;
};

TEST(Langevin, ClosedFormPairForcesGiveTheAutogradTrajectory) {
  for (const std::string name : {"lj13", "dw4"}) {
    std::shared_ptr<const Energy> energy = make_system(name);
    const int64_t n = energy->num_particles(), d = energy->dim();
    // Particles on a square/cubic grid at spacing 1.12 (about the pair minimum), 6 replicas.
    auto grid = torch::zeros({n, d}, torch::kFloat64);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0, rest = i; k < d; ++k, rest /= 3) grid[i][k] = 1.12 * static_cast<double>(rest % 3);
    auto start = grid.unsqueeze(0).expand({6, n, d}).clone();
    LangevinOptions options;
    options.timestep = 0.002;
    options.steps = 200;
    options.report_every = 50;
    options.seed = 5;
    const auto masses = torch::ones({n}, torch::kFloat64);
    LangevinIntegrator closed_form(energy, masses, 1.0, options);
    LangevinIntegrator autograd(std::make_shared<AutogradOnly>(energy), masses, 1.0, options);
    auto a = closed_form.initial_state(start);
    auto b = autograd.initial_state(start);
    auto frames_a = closed_form.run_and_collect(a);
    auto frames_b = autograd.run_and_collect(b);
    EXPECT_GT((a.positions - start).abs().max().item<double>(), 0.05) << name;  // it moved
    EXPECT_LT((a.positions - b.positions).abs().max().item<double>(), 1e-9) << name;
    EXPECT_LT((frames_a.energies - frames_b.energies).abs().max().item<double>(), 1e-8) << name;
  }
}

TEST(Langevin, AlanineDipeptideEnergyMatchesOpenMM) {
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(make_system("ala2"));
  const double dt = 0.0005, friction = 10.0;  // ps, 1/ps: energies decorrelate in ~0.1 ps
  auto x0 = molecule->reference_configuration();

  // Ours: 64 replicas, 1 ps burn-in, then 2 ps.
  LangevinOptions options;
  options.timestep = dt;
  options.friction = friction;
  options.steps = 6000;
  options.report_every = 50;
  options.seed = 11;
  LangevinIntegrator md(molecule, molecule->masses(), molecule->kT(), options);
  auto state = md.initial_state(x0.expand({64, 22, 3}).clone());
  auto frames = md.run_and_collect(state);
  auto ours = frames.energies.narrow(0, 40, 80);  // (80 frames, 64 replicas)
  auto [our_mean, our_error] = mean_and_error(ours);
  const double our_std = ours.std().item<double>();

  // OpenMM: 8 independent runs of the same length on the Reference platform.
  std::ifstream in(data_dir() + "/alanine-dipeptide/amber99sbildn-vacuum.xml");
  std::unique_ptr<OpenMM::System> system(OpenMM::XmlSerializer::deserialize<OpenMM::System>(in));
  std::vector<OpenMM::Vec3> positions;
  for (int64_t i = 0; i < 22; ++i)
    positions.emplace_back(molecule->topology().positions_nm[3 * i], molecule->topology().positions_nm[3 * i + 1],
                           molecule->topology().positions_nm[3 * i + 2]);
  std::vector<double> run_means, all;
  for (int run = 0; run < 8; ++run) {
    OpenMM::LangevinMiddleIntegrator integrator(300.0, friction, dt);
    integrator.setRandomNumberSeed(100 + run);
    OpenMM::Context context(*system, integrator, OpenMM::Platform::getPlatformByName("Reference"));
    context.setPositions(positions);
    context.setVelocitiesToTemperature(300.0, 200 + run);
    integrator.step(2000);
    double sum = 0;
    for (int frame = 0; frame < 80; ++frame) {
      integrator.step(50);
      const double u = context.getState(OpenMM::State::Energy).getPotentialEnergy() / molecule->kT();
      sum += u;
      all.push_back(u);
    }
    run_means.push_back(sum / 80);
  }
  auto their = torch::tensor(run_means, torch::kFloat64);
  const double their_mean = their.mean().item<double>();
  const double their_error = their.std().item<double>() / std::sqrt(8.0);
  const double their_std = torch::tensor(all, torch::kFloat64).std().item<double>();
  const double combined = std::hypot(our_error, their_error);
  EXPECT_NEAR(our_mean, their_mean, 4.0 * combined)
      << "ours " << our_mean << " +- " << our_error << ", OpenMM " << their_mean << " +- " << their_error;
  EXPECT_LT(combined, 1.0);  // the comparison resolves 1 kT
  // Spread of U: equipartition makes it ~sqrt(63/2) kT; the two must agree to ~10%.
  EXPECT_NEAR(our_std / their_std, 1.0, 0.12) << "std ours " << our_std << ", OpenMM " << their_std;
  RecordProperty("mean_energy_kT_ours", std::to_string(our_mean) + " +- " + std::to_string(our_error));
  RecordProperty("mean_energy_kT_openmm", std::to_string(their_mean) + " +- " + std::to_string(their_error));
}

}  // namespace
}  // namespace mintjulep
