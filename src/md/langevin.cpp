#include <mintjulep/error.hpp>
#include <mintjulep/langevin.hpp>

#include <torch/csrc/autograd/autograd.h>

#include <fmt/format.h>

#include <cmath>

namespace mintjulep {

LangevinIntegrator::LangevinIntegrator(std::shared_ptr<const Energy> energy, torch::Tensor masses,
                                       double kt, LangevinOptions options)
    : energy_(std::move(energy)), kt_(kt), options_(options) {
  check(energy_ != nullptr, "Langevin dynamics needs an energy");
  check(masses.dim() == 1 && masses.size(0) == energy_->num_particles(),
        fmt::format("need one mass per particle ({}), got {}", energy_->num_particles(), masses.numel()));
  check((masses > 0).all().item<bool>(), "every mass must be positive");
  check(std::isfinite(kt) && kt > 0, "kT must be positive");
  check(options_.timestep > 0 && std::isfinite(options_.timestep), "the time step must be positive");
  check(options_.friction >= 0 && std::isfinite(options_.friction), "the friction must be >= 0");
  check(options_.steps >= 0, "the number of steps must be >= 0");
  check(options_.report_every > 0, "report_every must be positive");
  inverse_mass_ = (1.0 / masses.to(torch::kFloat64)).reshape({1, -1, 1});
}

std::pair<torch::Tensor, torch::Tensor> LangevinIntegrator::energy_and_acceleration(
    const torch::Tensor& x) const {
  torch::Tensor value, grad_x;
  if (energy_->closed_form_energy_and_gradient(x, 1.0, value, grad_x))  // pair energies on CPU
    return {value.to(x.scalar_type()), -kt_ * grad_x.to(x.scalar_type()) * inverse_mass_.to(x.options())};
  torch::AutoGradMode grad_mode(true);
  // Slices of 128 replicas keep each term's intermediates in cache (as AnchoredEnergy does).
  constexpr int64_t kSlice = 128;
  std::vector<torch::Tensor> energies, grads;
  for (int64_t start = 0; start < x.size(0); start += kSlice) {
    auto input = x.narrow(0, start, std::min(kSlice, x.size(0) - start)).detach().requires_grad_(true);
    auto u = energy_->energy(input, 1.0);
    grads.push_back(torch::autograd::grad({u.sum()}, {input})[0]);
    energies.push_back(u.detach());
  }
  auto grad = grads.size() == 1 ? grads[0] : torch::cat(grads);
  auto u = energies.size() == 1 ? energies[0] : torch::cat(energies);
  return {u, -kt_ * grad * inverse_mass_.to(x.options())};
}

LangevinState LangevinIntegrator::initial_state(const torch::Tensor& positions) const {
  energy_->check_positions(positions, "initial positions");
  torch::manual_seed(options_.seed);
  auto x = positions.to(torch::kFloat64);
  auto sigma = (kt_ * inverse_mass_).sqrt().to(x.options());
  return {x, sigma * torch::randn_like(x), 0};
}

void LangevinIntegrator::run(LangevinState& state, const FrameCallback& on_frame) const {
  energy_->check_positions(state.positions, "positions");
  const double dt = options_.timestep;
  const double c1 = std::exp(-options_.friction * dt);
  auto x = state.positions.to(torch::kFloat64);
  auto v = state.velocities.to(x.options());
  auto noise_scale = (kt_ * (1.0 - c1 * c1) * inverse_mass_).sqrt().to(x.options());
  auto [u, a] = energy_and_acceleration(x);
  while (state.step < options_.steps) {
    if (state.step % options_.report_every == 0)
      torch::manual_seed(options_.seed * 1000003ULL + static_cast<uint64_t>(state.step));
    v = v + 0.5 * dt * a;                             // B: half kick
    x = x + 0.5 * dt * v;                             // A: half drift
    v = c1 * v + noise_scale * torch::randn_like(v);  // O: exact friction + noise
    x = x + 0.5 * dt * v;                             // A
    std::tie(u, a) = energy_and_acceleration(x);
    v = v + 0.5 * dt * a;                             // B
    ++state.step;
    if (state.step % options_.report_every == 0 || state.step == options_.steps) {
      // NaN propagates, so checking at frames catches every blow-up without a sync per step.
      check(torch::isfinite(u).all().item<bool>() && torch::isfinite(v).all().item<bool>(),
            fmt::format("Langevin dynamics produced a non-finite energy by step {}; use a smaller "
                        "time step (now {}) or check the starting structure",
                        state.step, dt));
      state.positions = x;
      state.velocities = v;
      if (on_frame && state.step % options_.report_every == 0) on_frame(state, u);
    }
  }
  state.positions = x;
  state.velocities = v;
}

LangevinFrames LangevinIntegrator::run_and_collect(LangevinState& state) const {
  std::vector<torch::Tensor> xs, us;
  std::vector<int64_t> steps;
  run(state, [&](const LangevinState& s, const torch::Tensor& u) {
    xs.push_back(s.positions.clone());
    us.push_back(u.clone());
    steps.push_back(s.step);
  });
  LangevinFrames frames;
  if (xs.empty()) return frames;
  frames.positions = torch::stack(xs);
  frames.energies = torch::stack(us);
  frames.steps = torch::tensor(steps, torch::kLong);
  return frames;
}

}  // namespace mintjulep
