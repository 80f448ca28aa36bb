#include <mintjulep/energy.hpp>
#include <mintjulep/error.hpp>

#include <torch/csrc/autograd/autograd.h>

#include <fmt/format.h>

namespace mintjulep {

std::vector<int64_t> Energy::particle_types() const {
  return std::vector<int64_t>(static_cast<size_t>(num_particles()), 0);
}

static std::string shape_string(const torch::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

void Energy::check_positions(const torch::Tensor& x, const std::string& what) const {
  check(x.defined(), what + " are missing");
  check(x.dim() == 3 && x.size(1) == num_particles() && x.size(2) == dim(),
        fmt::format("{} have shape {}, but system '{}' needs (B, {}, {}): one row per particle, "
                    "one column per dimension",
                    what, shape_string(x), name(), num_particles(), dim()));
  check(x.is_floating_point(), fmt::format("{} must be float32 or float64, got {}", what,
                                           std::string(c10::toString(x.scalar_type()))));
}

AnchoredEnergy::AnchoredEnergy(std::shared_ptr<const Energy> energy, int64_t anchor)
    : energy_(std::move(energy)), anchor_(anchor) {
  check(energy_ != nullptr, "AnchoredEnergy needs an energy");
  check(anchor_ >= 0 && anchor_ < energy_->num_particles(),
        fmt::format("anchor index {} is out of range for system '{}' with {} particles; use 0..{}",
                    anchor_, energy_->name(), energy_->num_particles(),
                    energy_->num_particles() - 1));
}

torch::Tensor AnchoredEnergy::to_anchored(const torch::Tensor& x) const {
  energy_->check_positions(x);
  const int64_t n_particles = energy_->num_particles();
  auto relative = x - x.narrow(1, anchor_, 1);
  return torch::cat({relative.narrow(1, 0, anchor_),
                     relative.narrow(1, anchor_ + 1, n_particles - anchor_ - 1)},
                    1);
}

torch::Tensor AnchoredEnergy::to_full(const torch::Tensor& y) const {
  check(y.dim() == 3 && y.size(1) == num_free() && y.size(2) == dim(),
        fmt::format("anchored coordinates have shape {}, but system '{}' needs (B, {}, {})",
                    shape_string(y), energy_->name(), num_free(), dim()));
  auto origin = torch::zeros({y.size(0), 1, y.size(2)}, y.options());
  return torch::cat({y.narrow(1, 0, anchor_), origin, y.narrow(1, anchor_, num_free() - anchor_)},
                    1);
}

torch::Tensor AnchoredEnergy::value(const torch::Tensor& y, double t) const {
  // With no gradient to carry, the closed-form pass of the pair energies (CPU) beats the
  // tensor ops several times on large batches (they materialise every pair); its gradient is
  // discarded.
  if (!y.requires_grad()) {
    torch::Tensor v, grad_x;
    if (energy_->closed_form_energy_and_gradient(to_full(y), t, v, grad_x)) return v.to(y.scalar_type());
  }
  return energy_->energy(to_full(y), t);
}

ValueAndGrad AnchoredEnergy::value_and_grad(const torch::Tensor& y, double t,
                                            bool create_graph) const {
  const bool keep_graph = create_graph || y.requires_grad();
  if (!keep_graph) {
    torch::Tensor v, grad_x;
    if (energy_->closed_form_energy_and_gradient(to_full(y), t, v, grad_x)) {
      // The anchor sits at the origin whatever y is, so dV/dy is dV/dx without the anchor's row.
      auto g = torch::cat({grad_x.narrow(1, 0, anchor_), grad_x.narrow(1, anchor_ + 1, num_free() - anchor_)}, 1);
      return {v.to(y.scalar_type()), g.to(y.scalar_type())};
    }
  }
  torch::AutoGradMode grad_mode(true);
  // Without a graph to keep, large batches go through in slices: the per-pair intermediates
  // of a slice stay in cache, which makes LJ-55 at batch 1e4 ~5x faster than one big pass.
  // A GPU wants the whole batch at once.
  constexpr int64_t kSlice = 128;
  if (!keep_graph && y.size(0) > kSlice && !y.is_cuda()) {
    std::vector<torch::Tensor> values, grads;
    for (int64_t start = 0; start < y.size(0); start += kSlice) {
      auto part = value_and_grad(y.narrow(0, start, std::min(kSlice, y.size(0) - start)), t);
      values.push_back(part.value);
      grads.push_back(part.grad);
    }
    return {torch::cat(values), torch::cat(grads)};
  }
  torch::Tensor input = y.requires_grad() ? y : y.detach().requires_grad_(true);
  torch::Tensor v = value(input, t);
  auto grads = torch::autograd::grad({v.sum()}, {input}, /*grad_outputs=*/{},
                                     /*retain_graph=*/keep_graph, /*create_graph=*/create_graph);
  if (!keep_graph) return {v.detach(), grads[0].detach()};
  return {v, grads[0]};
}

torch::Tensor AnchoredEnergy::full_forces(const torch::Tensor& grad_y) const {
  // dU/dx_i = dV/dy_i for i != anchor; dU/dx_anchor = -sum_i dV/dy_i.
  auto anchor_grad = -grad_y.sum(1, /*keepdim=*/true);
  auto full_grad = torch::cat({grad_y.narrow(1, 0, anchor_), anchor_grad,
                               grad_y.narrow(1, anchor_, num_free() - anchor_)},
                              1);
  return -full_grad;
}

}  // namespace mintjulep
