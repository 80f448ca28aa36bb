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
  if (graph == Graph::none) return evaluate_detached(y, t, potential);
  torch::AutoGradMode enable(true);
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
    grad = torch::autograd::grad({scalar}, {y_in}, {}, /*retain_graph=*/true,
                                 /*create_graph=*/true, /*allow_unused=*/true)[0];
  if (!grad.defined()) grad = torch::zeros_like(y);
  torch::Tensor target_value;
  if (t > 0) {
    auto target = through_y ? energy_->value_and_grad(y, t, /*create_graph=*/true)
                            : energy_->value_and_grad(y.detach(), t);
    grad = grad + t * target.grad.to(y.scalar_type());
    target_value = target.value;
  }
  if (potential) p.u = potential_value(y, t, path_log_q, target_value, util);
  p.grad_u = grad;
  return p;
}

torch::Tensor JulepSamplerImpl::potential_value(const torch::Tensor& y, double t, const torch::Tensor& path_log_q,
                                                const torch::Tensor& target_value, const torch::Tensor& util) const {
  // U_t = -(1 - t) path log q + t V(y, t) + t (1 - t) Util, as the score.
  torch::NoGradGuard no_grad;
  auto u = torch::zeros({y.size(0)}, y.options().dtype(torch::kFloat64));
  if (path_log_q.defined()) u = u - (1 - t) * path_log_q.detach().to(torch::kFloat64);
  if (target_value.defined()) u = u + t * target_value.detach().to(torch::kFloat64);
  if (util.defined()) u = u + t * (1 - t) * util.detach().to(torch::kFloat64);
  return u;
}

JulepSamplerImpl::PointEval JulepSamplerImpl::evaluate_detached(const torch::Tensor& y, double t, bool potential) {
  // Simulation: nothing here is differentiated afterwards. The network builds a graph only
  // when grad_y Util is wanted, and that gradient and the prior's come out of one backward
  // pass, into separate leaves: the prior and target part is kept apart (fixed_grad) for the
  // kernel gradient, which reuses it.
  PointEval p;
  const bool want_util = options_.use_util && t > 0 && t < 1;
  const bool need_net = options_.use_a || options_.use_b || want_util;
  const auto dtype = y.scalar_type();
  torch::Tensor util, path_log_q, util_grad, fixed;
  std::vector<torch::Tensor> leaves;
  torch::Tensor scalar;
  {
    torch::AutoGradMode enable(want_util || t < 1);
    torch::Tensor y_net, y_prior;
    if (need_net) {
      const auto net_type = network_->parameters().front().scalar_type();
      NetworkOutput out;
      if (want_util) {
        y_net = y.detach().to(net_type).requires_grad_(true);
        out = network_->forward(y_net, t);
        util = out.util.to(dtype);
        scalar = t * (1 - t) * util.sum();
        leaves.push_back(y_net);
      } else {
        torch::NoGradGuard no_grad;
        out = network_->forward(y.detach().to(net_type), t);
      }
      if (options_.use_b) p.b = out.b.detach().to(dtype);
      if (options_.use_a) p.h = out.h.detach().to(dtype);
    }
    if (t < 1) {
      y_prior = y.detach().requires_grad_(true);
      path_log_q = prior_->path_log_prob(y_prior).to(dtype);
      auto term = -(1 - t) * path_log_q.sum();
      scalar = scalar.defined() ? scalar + term : term;
      leaves.push_back(y_prior);
    }
    if (!leaves.empty()) {
      auto grads = torch::autograd::grad({scalar}, leaves, {}, /*retain_graph=*/false,
                                         /*create_graph=*/false, /*allow_unused=*/true);
      size_t i = 0;
      if (want_util) util_grad = grads[i++];
      if (t < 1) fixed = grads[i++];
    }
  }
  torch::NoGradGuard no_grad;
  if (util_grad.defined()) util_grad = util_grad.to(dtype);
  if (!fixed.defined()) fixed = torch::zeros_like(y);
  torch::Tensor target_value;
  if (t > 0) {
    auto target = energy_->value_and_grad(y.detach(), t);
    fixed = fixed + t * target.grad.to(dtype);
    target_value = target.value;
  }
  p.fixed_grad = fixed.detach();
  p.grad_u = util_grad.defined() ? p.fixed_grad + util_grad : p.fixed_grad;
  if (potential) p.u = potential_value(y, t, path_log_q, target_value, util);
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
  std::vector<torch::Tensor> path, fixed;
  if (keep_path) {
    path.push_back(state.y);
    fixed.push_back(state.point.fixed_grad);
  }
  // The last evaluation is at t = 1, where U_1 = V(., 1): its value closes log w, so the
  // target is evaluated once there.
  const bool ends_at_one = times.back() == 1.0;
  for (int64_t j = 1; j <= T; ++j) {
    auto increment = advance(state, times, j, noise.defined() ? noise[j - 1] : torch::Tensor(),
                             /*potential=*/ends_at_one && j == T);
    {
      torch::NoGradGuard no_grad;
      log_w = log_w + increment;
    }
    if (keep_path) {
      path.push_back(state.y);
      fixed.push_back(state.point.fixed_grad);
    }
  }
  {
    torch::NoGradGuard no_grad;
    log_w = log_w - (ends_at_one ? state.point.u : energy_->value(state.y, 1.0).to(torch::kFloat64));
  }
  out.final = state.y;
  out.log_w = log_w;
  if (keep_path) {
    out.path = torch::stack(path, 1);
    out.fixed_score = torch::stack(fixed, 1);
  }
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

void JulepSamplerImpl::accumulate_kernel_gradient(const torch::Tensor& path, const torch::Tensor& fixed_score,
                                                  const std::vector<double>& times,
                                                  const torch::Tensor& coefficient, int64_t first,
                                                  int64_t last, int64_t max_configurations) {
  const int64_t T = options_.steps, batch = path.size(0);
  check(static_cast<int64_t>(times.size()) == T + 1, "time grid must have T + 1 points");
  check(path.dim() == 4 && path.size(1) == T + 1 && fixed_score.sizes() == path.sizes(),
        "accumulate_kernel_gradient: path and fixed_score must be (B, T+1, M, n)");
  check(first >= 0 && first <= last && last <= T + 1, "accumulate_kernel_gradient: bad point range");
  check(max_configurations >= 1, "accumulate_kernel_gradient: max_configurations must be >= 1");
  std::vector<torch::Tensor> inputs;
  for (const auto& p : network_->parameters())
    if (p.requires_grad()) inputs.push_back(p);
  if (log_eps.requires_grad()) inputs.push_back(log_eps);
  if (inputs.empty() || first == last) return;
  const auto net_type = network_->parameters().front().scalar_type();
  const auto dtype = path.scalar_type();
  const bool need_net = options_.use_a || options_.use_b || options_.use_util;
  // Points per pass and trajectories per pass within the configuration budget.
  const int64_t points = std::clamp<int64_t>(max_configurations / batch, 1, last - first);
  const int64_t rows = std::min(batch, std::max<int64_t>(1, max_configurations / points));
  torch::AutoGradMode enable(true);
  for (int64_t k0 = first; k0 < last; k0 += points) {
    const int64_t k1 = std::min(last, k0 + points), count = k1 - k0;
    const std::vector<double> block_times(times.begin() + k0, times.begin() + k1);
    for (int64_t s0 = 0; s0 < batch; s0 += rows) {
      const int64_t s1 = std::min(batch, s0 + rows), n_rows = s1 - s0;
      auto rows_path = path.narrow(0, s0, n_rows);
      auto c = coefficient.narrow(0, s0, n_rows).to(dtype);
      // Blocks of configurations, point-major: block i holds y_{k0+i} of these trajectories.
      auto y = rows_path.narrow(1, k0, count).transpose(0, 1).reshape({count * n_rows, path.size(2), path.size(3)});
      NetworkOutput out;
      torch::Tensor util_grad;
      if (need_net) {
        auto y_net = y.to(net_type).detach().requires_grad_(options_.use_util);
        out = network_->forward(y_net, block_times);
        if (options_.use_util) {
          // sum_i t_i (1 - t_i) Util at the points of block i; Util is left out at t = 0, 1.
          std::vector<double> weight;
          for (double t : block_times) weight.push_back(t > 0 && t < 1 ? t * (1 - t) : 0.0);
          if (std::any_of(weight.begin(), weight.end(), [](double w) { return w != 0; })) {
            auto w = torch::tensor(weight, path.options()).repeat_interleave(n_rows);
            auto scalar = (out.util.to(dtype) * w).sum();
            util_grad = torch::autograd::grad({scalar}, {y_net}, {}, /*retain_graph=*/true,
                                              /*create_graph=*/true)[0].to(dtype);
          }
        }
      }
      torch::Tensor loss = torch::zeros({}, path.options());
      for (int64_t i = 0; i < count; ++i) {
        const int64_t k = k0 + i;
        const double t = times[static_cast<size_t>(k)];
        PointEval point;
        if (options_.use_b) point.b = out.b.narrow(0, i * n_rows, n_rows).to(dtype);
        if (options_.use_a) point.h = out.h.narrow(0, i * n_rows, n_rows).to(dtype);
        point.grad_u = fixed_score.narrow(0, s0, n_rows).select(1, k);
        if (util_grad.defined() && t > 0 && t < 1)
          point.grad_u = point.grad_u + util_grad.narrow(0, i * n_rows, n_rows);
        auto y_k = rows_path.select(1, k);
        if (k < T) {  // |y_{k+1} - F_{k+1}(y_k)|^2 / (4 eps dt)
          const double dt = times[static_cast<size_t>(k + 1)] - t;
          auto eps = step_eps(t);
          auto sq = (rows_path.select(1, k + 1) - forward_mean(point, y_k, dt, eps)).pow(2).sum({1, 2});
          loss = loss + (c * sq).sum() / (4 * eps * dt);
        }
        if (k > 0) {  // -|y_{k-1} - B_k(y_k)|^2 / (4 eps dt)
          const double t_prev = times[static_cast<size_t>(k - 1)], dt = t - t_prev;
          auto eps = step_eps(t_prev);
          auto sq = (rows_path.select(1, k - 1) - backward_mean(point, y_k, dt, eps)).pow(2).sum({1, 2});
          loss = loss - (c * sq).sum() / (4 * eps * dt);
        }
      }
      if (loss.requires_grad())
        torch::autograd::backward({loss}, {}, /*retain_graph=*/false, /*create_graph=*/false, inputs);
    }
  }
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
