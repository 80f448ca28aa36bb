#include <mintjulep/error.hpp>
#include <mintjulep/julep.hpp>

#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>

namespace mintjulep {

torch::Tensor low_rank_expm_apply(const torch::Tensor& h, const torch::Tensor& y, double s) {
  const int64_t r = h.size(-1);
  auto ht = h.transpose(1, 2);                // (B, r, M)
  auto x = s * torch::matmul(ht, h);          // (B, r, r)
  auto block = torch::zeros({h.size(0), 2 * r, 2 * r}, h.options());
  block.narrow(1, 0, r).narrow(2, 0, r).copy_(x);
  block.narrow(1, 0, r).narrow(2, r, r).copy_(torch::eye(r, h.options()));
  // copy_ into a fresh tensor keeps autograd: block is a function of x.
  auto phi = torch::linalg_matrix_exp(block).narrow(1, 0, r).narrow(2, r, r);
  return y + s * torch::matmul(h, torch::matmul(phi, torch::matmul(ht, y)));
}

JulepSamplerImpl::JulepSamplerImpl(MintPrior prior, std::shared_ptr<const AnchoredEnergy> energy,
                                   Egnn network, JulepOptions options)
    : prior_(std::move(prior)), energy_(std::move(energy)), network_(std::move(network)),
      options_(options) {
  check(options_.steps >= 1, "julep steps T must be >= 1");
  check(options_.eps > 0, "julep eps must be positive");
  register_module("prior", prior_);
  register_module("network", network_);
  log_eps = register_parameter("log_eps",
                               torch::full({options_.steps}, std::log(options_.eps), torch::kFloat64),
                               /*requires_grad=*/options_.learn_eps);
}

std::vector<double> JulepSamplerImpl::time_grid(std::mt19937_64& rng) const {
  const int64_t T = options_.steps;
  std::vector<double> t(static_cast<size_t>(T + 1));
  if (!options_.random_grid) {
    for (int64_t j = 0; j <= T; ++j) t[static_cast<size_t>(j)] = static_cast<double>(j) / T;
    return t;
  }
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t j = 1; j < T; ++j) t[static_cast<size_t>(j)] = u(rng);
  t[0] = 0.0;
  t[static_cast<size_t>(T)] = 1.0;
  std::sort(t.begin(), t.end());
  return t;
}

torch::Tensor JulepSamplerImpl::step_eps(double t_start) const {
  const int64_t bin = std::min<int64_t>(options_.steps - 1,
                                        static_cast<int64_t>(std::floor(t_start * options_.steps + 1e-9)));
  return log_eps[bin].exp();
}

JulepSamplerImpl::PointEval JulepSamplerImpl::evaluate(const torch::Tensor& y, double t, Graph graph,
                                                       bool potential) {
  // grad_y U_t = -(1 - t) grad log q + t grad V(y, t) + t (1 - t) grad Util.
  torch::AutoGradMode enable(true);
  const bool differentiable = graph != Graph::none;
  const bool through_y = graph == Graph::path && y.requires_grad();
  PointEval p;
  auto y_in = through_y ? y : y.detach().requires_grad_(true);
  torch::Tensor scalar = torch::zeros({}, y.options());
  torch::Tensor util, path_log_q;  // per point, when computed
  const bool need_net = options_.use_a || options_.use_b || (options_.use_util && t > 0 && t < 1);
  if (need_net) {
    // The network runs in its own dtype; its outputs come back in the path's (float64).
    const auto net_type = network_->parameters().front().scalar_type();
    auto out = network_->forward(y_in.to(net_type), t);
    if (options_.use_b) p.b = out.b.to(y.scalar_type());
    if (options_.use_a) p.h = out.h.to(y.scalar_type());
    if (options_.use_util && t > 0 && t < 1) {
      util = out.util.to(y.scalar_type());
      scalar = scalar + t * (1 - t) * util.sum();
    }
  }
  if (t < 1) {
    path_log_q = prior_->path_log_prob(y_in).to(y.scalar_type());
    scalar = scalar - (1 - t) * path_log_q.sum();
  }
  torch::Tensor grad;
  if (scalar.requires_grad())
    grad = torch::autograd::grad({scalar}, {y_in}, {}, /*retain_graph=*/differentiable,
                                 /*create_graph=*/differentiable, /*allow_unused=*/true)[0];
  if (!grad.defined()) grad = torch::zeros_like(y);
  torch::Tensor target_value;
  if (t > 0) {
    auto target = through_y ? energy_->value_and_grad(y, t, /*create_graph=*/true)
                            : energy_->value_and_grad(y.detach(), t);
    grad = grad + t * target.grad.to(y.scalar_type());
    target_value = target.value;
  }
  if (potential) {
    // U_t = -(1 - t) path log q + t V(y, t) + t (1 - t) Util, as the score above.
    torch::NoGradGuard no_grad;
    auto u = torch::zeros({y.size(0)}, y.options().dtype(torch::kFloat64));
    if (path_log_q.defined()) u = u - (1 - t) * path_log_q.detach().to(torch::kFloat64);
    if (target_value.defined()) u = u + t * target_value.detach().to(torch::kFloat64);
    if (util.defined()) u = u + t * (1 - t) * util.detach().to(torch::kFloat64);
    p.u = u;
  }
  p.grad_u = differentiable ? grad : grad.detach();
  if (!differentiable) {
    if (p.b.defined()) p.b = p.b.detach();
    if (p.h.defined()) p.h = p.h.detach();
  }
  return p;
}

torch::Tensor JulepSamplerImpl::cap_displacement(const torch::Tensor& d) const {
  if (options_.max_step <= 0) return d;
  const double cap = options_.max_step * energy_->energy().length_scale();
  auto norm = d.pow(2).sum(-1, /*keepdim=*/true).add(1e-300).sqrt();
  return d * torch::clamp_max(cap / norm, 1.0);  // per particle: rotation equivariant
}

torch::Tensor JulepSamplerImpl::forward_mean(const PointEval& p, const torch::Tensor& y, double dt,
                                             const torch::Tensor& eps) {
  auto mean = p.h.defined() ? low_rank_expm_apply(p.h, y, dt) : y;
  auto drift = -eps * p.grad_u;
  if (p.b.defined()) drift = drift + p.b;
  return mean + cap_displacement(dt * drift);
}

torch::Tensor JulepSamplerImpl::backward_mean(const PointEval& p, const torch::Tensor& y, double dt,
                                              const torch::Tensor& eps) {
  auto mean = p.h.defined() ? low_rank_expm_apply(p.h, y, -dt) : y;
  auto drift = -eps * p.grad_u;
  if (p.b.defined()) drift = drift - p.b;
  return mean + cap_displacement(dt * drift);
}

PathBatch JulepSamplerImpl::simulate(int64_t count, const std::vector<double>& times, bool keep_path) {
  return simulate_from(prior_->sample(count), times, keep_path);
}

JulepSamplerImpl::State JulepSamplerImpl::State::index_select(const torch::Tensor& index) const {
  const auto pick = [&](const torch::Tensor& t) { return t.defined() ? t.index_select(0, index) : t; };
  State s;
  s.y = pick(y);
  s.point.b = pick(point.b);
  s.point.h = pick(point.h);
  s.point.grad_u = pick(point.grad_u);
  s.point.u = pick(point.u);
  return s;
}

JulepSamplerImpl::State JulepSamplerImpl::start(const torch::Tensor& y0, const std::vector<double>& times,
                                                bool potential) {
  check(static_cast<int64_t>(times.size()) == options_.steps + 1, "time grid must have T + 1 points");
  State s;
  s.y = y0.detach().to(log_eps.scalar_type());
  s.point = evaluate(s.y, times[0], Graph::none, potential);
  return s;
}

torch::Tensor JulepSamplerImpl::advance(State& state, const std::vector<double>& times, int64_t j,
                                        const torch::Tensor& xi, bool potential) {
  check(j >= 1 && j <= options_.steps, "advance: step j must be in 1..T");
  const double t0 = times[static_cast<size_t>(j - 1)], t1 = times[static_cast<size_t>(j)];
  const double dt = t1 - t0;
  const auto& y = state.y;
  torch::Tensor eps, y_next, next_mean, back_mean, increment;
  {
    torch::NoGradGuard no_grad;
    eps = step_eps(t0).detach();
    next_mean = forward_mean(state.point, y, dt, eps);
    auto noise = xi.defined() ? xi.to(y.scalar_type()) : torch::randn_like(y);
    y_next = next_mean + torch::sqrt(2 * eps * dt) * noise;
  }
  auto next = evaluate(y_next, t1, Graph::none, potential);
  {
    torch::NoGradGuard no_grad;
    back_mean = backward_mean(next, y_next, dt, eps);
    auto forward_sq = (y_next - next_mean).pow(2).sum({1, 2});
    auto backward_sq = (y - back_mean).pow(2).sum({1, 2});
    increment = ((forward_sq - backward_sq) / (4 * eps * dt)).to(torch::kFloat64);
  }
  state.y = y_next;
  state.point = next;
  return increment;
}

PathBatch JulepSamplerImpl::simulate_from(const torch::Tensor& y0, const std::vector<double>& times,
                                          bool keep_path, const torch::Tensor& noise) {
  const int64_t T = options_.steps;
  check(static_cast<int64_t>(times.size()) == T + 1, "time grid must have T + 1 points");
  PathBatch out;
  out.times = times;
  auto state = start(y0, times);
  torch::Tensor log_w;
  {
    torch::NoGradGuard no_grad;
    log_w = -prior_->log_prob(state.y);
  }
  std::vector<torch::Tensor> path;
  if (keep_path) path.push_back(state.y);
  for (int64_t j = 1; j <= T; ++j) {
    auto increment = advance(state, times, j, noise.defined() ? noise[j - 1] : torch::Tensor());
    {
      torch::NoGradGuard no_grad;
      log_w = log_w + increment;
    }
    if (keep_path) path.push_back(state.y);
  }
  {
    torch::NoGradGuard no_grad;
    log_w = log_w - energy_->value(state.y, 1.0).to(torch::kFloat64);
  }
  out.final = state.y;
  out.log_w = log_w;
  if (keep_path) out.path = torch::stack(path, 1);
  return out;
}

torch::Tensor JulepSamplerImpl::kernel_log_weight(const torch::Tensor& path,
                                                  const std::vector<double>& times, int64_t first,
                                                  int64_t last) {
  check(first >= 1 && last <= options_.steps + 1 && first <= last, "kernel_log_weight: bad step range");
  torch::Tensor total = torch::zeros({path.size(0)}, path.options());
  auto point = evaluate(path.select(1, first - 1), times[static_cast<size_t>(first - 1)], Graph::parameters);
  for (int64_t j = first; j < last; ++j) {
    const double t0 = times[static_cast<size_t>(j - 1)], t1 = times[static_cast<size_t>(j)];
    const double dt = t1 - t0;
    auto y = path.select(1, j - 1), y_next = path.select(1, j);
    auto eps = step_eps(t0);
    auto next = evaluate(y_next, t1, Graph::parameters);
    auto forward_sq = (y_next - forward_mean(point, y, dt, eps)).pow(2).sum({1, 2});
    auto backward_sq = (y - backward_mean(next, y_next, dt, eps)).pow(2).sum({1, 2});
    total = total + (forward_sq - backward_sq) / (4 * eps * dt);
    point = next;
  }
  return total;
}

torch::Tensor JulepSamplerImpl::differentiable_log_weight(const torch::Tensor& y0,
                                                          const std::vector<double>& times,
                                                          const torch::Tensor& noise) {
  const int64_t T = options_.steps;
  check(static_cast<int64_t>(times.size()) == T + 1, "time grid must have T + 1 points");
  // y_0 ~ q is a constant (the prior is frozen); every later y_j depends on the parameters.
  auto y = y0.detach().to(log_eps.scalar_type());
  torch::Tensor log_w;
  {
    torch::NoGradGuard no_grad;
    log_w = -prior_->log_prob(y);
  }
  auto point = evaluate(y, times[0], Graph::path);
  for (int64_t j = 1; j <= T; ++j) {
    const double t0 = times[static_cast<size_t>(j - 1)], t1 = times[static_cast<size_t>(j)];
    const double dt = t1 - t0;
    auto eps = step_eps(t0);
    auto xi = noise.defined() ? noise[j - 1].to(y.scalar_type()) : torch::randn_like(y);
    auto y_next = forward_mean(point, y, dt, eps) + torch::sqrt(2 * eps * dt) * xi;
    auto next = evaluate(y_next, t1, Graph::path);
    // The forward term is |xi|^2 / 2 exactly: y_next - F(y) is the scaled noise.
    auto forward_sq_scaled = 0.5 * xi.pow(2).sum({1, 2});
    auto backward_sq = (y - backward_mean(next, y_next, dt, eps)).pow(2).sum({1, 2});
    log_w = log_w + (forward_sq_scaled - backward_sq / (4 * eps * dt)).to(torch::kFloat64);
    y = y_next;
    point = next;
  }
  return log_w - energy_->value(y, 1.0).to(torch::kFloat64);
}

}  // namespace mintjulep
