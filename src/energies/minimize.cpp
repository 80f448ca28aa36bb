#include <mintjulep/error.hpp>
#include <mintjulep/minimize.hpp>

#include <torch/optim/lbfgs.h>

#include <cmath>

namespace mintjulep {

MinimizeResult minimize_energy(const AnchoredEnergy& energy, const torch::Tensor& y,
                               int64_t max_iterations, double t) {
  torch::AutoGradMode grad_mode(true);
  auto variable = y.to(torch::kFloat64).detach().clone().requires_grad_(true);
  MinimizeResult result;
  result.initial_energy = energy.value(variable.detach(), t).sum().item<double>();
  check(std::isfinite(result.initial_energy),
        "cannot minimise: the starting structure has a non-finite energy (overlapping atoms?)");
  torch::optim::LBFGS optimizer(
      {variable}, torch::optim::LBFGSOptions(1.0)
                      .max_iter(max_iterations)
                      .history_size(20)
                      .tolerance_grad(1e-8)
                      .tolerance_change(1e-12)
                      .line_search_fn("strong_wolfe"));
  auto closure = [&] {
    optimizer.zero_grad();
    auto v = energy.value(variable, t).sum();
    v.backward();
    return v;
  };
  optimizer.step(closure);
  result.y = variable.detach();
  result.final_energy = energy.value(result.y, t).sum().item<double>();
  return result;
}

}  // namespace mintjulep
