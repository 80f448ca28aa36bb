#pragma once
// Reference molecular dynamics: many replicas of Langevin dynamics integrated in parallel
// (one batched energy evaluation per step) with the BAOAB splitting of Leimkuhler and
// Matthews: half kick, half drift, exact Ornstein-Uhlenbeck velocity update, half drift,
// half kick. Its configurations sample exp(-U) up to an O(dt^2) bias.
#include <mintjulep/energy.hpp>

#include <functional>

namespace mintjulep {

struct LangevinOptions {
  double timestep = 0.0005;  // ps for molecules (0.5 fs: no constraints on X-H bonds)
  double friction = 1.0;     // 1/ps
  int64_t steps = 10000;
  int64_t report_every = 100;  // one saved frame every this many steps
  uint64_t seed = 0;
};

// The dynamical state of all replicas.
struct LangevinState {
  torch::Tensor positions;   // (R, N, n)
  torch::Tensor velocities;  // (R, N, n)
  int64_t step = 0;
};

struct LangevinFrames {
  torch::Tensor positions;  // (F, R, N, n)
  torch::Tensor energies;   // (F, R), kT
  torch::Tensor steps;      // (F,) step index of each frame
};

// Units: U in kT; `kt` is kT in the energy unit of mass * length^2 / time^2 (kJ/mol for
// molecules in amu, nm, ps; 1 for reduced-unit systems with unit masses). masses: (N,).
class LangevinIntegrator {
 public:
  LangevinIntegrator(std::shared_ptr<const Energy> energy, torch::Tensor masses, double kt,
                     LangevinOptions options);

  // Velocities drawn from Maxwell-Boltzmann at kT for the given positions (R, N, n).
  LangevinState initial_state(const torch::Tensor& positions) const;

  // Advances state until state.step reaches options.steps. Whenever step is a multiple of
  // report_every, on_frame(state, energies (R,) in kT) is called (saving, progress,
  // checkpoints). The noise of every report interval is seeded by (seed, step), so a run
  // resumed from a state saved at a frame continues exactly as the uninterrupted run.
  using FrameCallback = std::function<void(const LangevinState&, const torch::Tensor&)>;
  void run(LangevinState& state, const FrameCallback& on_frame) const;

  // run() from `state`, keeping every frame.
  LangevinFrames run_and_collect(LangevinState& state) const;

  // U (kT) and the acceleration -kT grad U / m of positions (R, N, n).
  std::pair<torch::Tensor, torch::Tensor> energy_and_acceleration(const torch::Tensor& x) const;

 private:
  std::shared_ptr<const Energy> energy_;
  torch::Tensor inverse_mass_;  // (1, N, 1)
  double kt_;
  LangevinOptions options_;
};

}  // namespace mintjulep
