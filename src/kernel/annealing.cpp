#include <mintjulep/annealing.hpp>
#include <mintjulep/chunks.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

namespace mintjulep {

const std::vector<std::string>& anneal_methods() {
  static const std::vector<std::string> names{"ula", "mala", "julep", "smc-ula", "smc-mala", "smc-julep"};
  return names;
}

bool anneal_method_uses_mala(const std::string& method) { return method == "mala" || method == "smc-mala"; }

bool anneal_method_resamples(const std::string& method) { return method.rfind("smc-", 0) == 0; }

bool anneal_path_is_geometric(const std::string& path) {
  check(path == "soft" || path == "geometric",
        fmt::format("annealing path '{}' is unknown; use \"soft\" (the soft-core path of DESIGN.md §4) or "
                    "\"geometric\" (-(1 - t) log q + t U)",
                    path));
  return path == "geometric";
}

void check_anneal_options(const AnnealOptions& o) {
  const auto& names = anneal_methods();
  check(std::find(names.begin(), names.end(), o.method) != names.end(),
        fmt::format("annealing method '{}' is unknown; use ula, mala, julep, smc-ula, smc-mala or smc-julep",
                    o.method));
  check(o.steps >= 1, "annealing steps must be >= 1");
  check(o.moves >= 1, "annealing moves per temperature must be >= 1");
  check(o.leapfrog >= 1, "annealing leapfrog steps per move must be >= 1 (1: MALA)");
  check(o.independence >= 0, "annealing independence moves per temperature must be >= 0");
  check(o.schedule_power > 0 && std::isfinite(o.schedule_power),
        "annealing schedule_power must be positive (t_j = (j / T)^power; 1: uniform)");
  check(o.step_size > 0, "annealing step_size must be positive");
  check(o.max_step_size > 0, "annealing max_step_size must be positive");
  check(o.target_acceptance > 0 && o.target_acceptance < 1, "annealing target_acceptance must be in (0, 1)");
  check(o.pilot >= 0, "annealing pilot must be >= 0");
  check(o.resample_threshold >= 0 && o.resample_threshold <= 1,
        "annealing resample_threshold must be in [0, 1]");
  check(o.chunk >= 1, "annealing chunk must be >= 1");
}

torch::Tensor systematic_resample(const torch::Tensor& log_w, double u, int64_t count) {
  const int64_t n = log_w.size(0);
  if (count < 0) count = n;
  auto finite = log_w.to(torch::kFloat64);
  finite = torch::where(torch::isfinite(finite), finite,
                        torch::full_like(finite, -std::numeric_limits<double>::infinity()));
  check(n > 0 && torch::isfinite(finite).any().item<bool>(),
        "systematic resampling needs at least one finite weight");
  auto w = torch::softmax(finite, 0);
  auto cdf = torch::cumsum(w, 0);
  // Points scaled by cdf[-1] (1 up to rounding) stay below it, and with right-sided search each
  // lands on the first index whose cdf exceeds it: never on a zero weight, never past the end.
  auto points = (torch::arange(count, w.options()) + u) / static_cast<double>(count) * cdf[-1];
  return torch::searchsorted(cdf, points, /*out_int32=*/false, /*right=*/true).clamp_max(n - 1);
}

namespace {

constexpr double kGain = 1.0;  // log h += kGain (acceptance - target)
// Prior configurations (chains x relabellings) differentiated at once in potential(); bounds
// the annealing's peak memory (0.1-0.2 MB per configuration for the alanine dipeptide prior).
constexpr int64_t kPriorConfigurationsPerPass = int64_t{1} << 14;

// Normalised ESS of log weights; NaN when every weight is zero.
double normalised_ess(const torch::Tensor& log_w) {
  const double lse = torch::logsumexp(log_w, 0).item<double>();
  const double lse2 = torch::logsumexp(2 * log_w, 0).item<double>();
  return std::exp(2 * lse - lse2) / static_cast<double>(log_w.size(0));
}

// Trajectories set to weight zero because their log w became NaN or +inf.
struct Dropped {
  int64_t nan = 0, overflow = 0;
};

// NaN and +inf log w become -inf (weight zero), counted in `dropped`.
torch::Tensor sanitize(const torch::Tensor& log_w, Dropped& dropped) {
  auto finite = torch::isfinite(log_w);
  if (finite.all().item<bool>()) return log_w;
  dropped.nan += torch::isnan(log_w).sum().item<int64_t>();
  dropped.overflow += (log_w == std::numeric_limits<double>::infinity()).sum().item<int64_t>();
  return torch::where(finite, log_w, torch::full_like(log_w, -std::numeric_limits<double>::infinity()));
}

// Resamples when due; returns the indices (undefined when not resampled) and adds to log_z.
torch::Tensor maybe_resample(torch::Tensor& log_w, double threshold, double& log_z, int64_t& events,
                             Dropped& dropped, std::mt19937_64& rng) {
  log_w = sanitize(log_w, dropped);
  const double ess = normalised_ess(log_w);
  if (!(ess < threshold)) return {};  // also skips all-zero weights (NaN)
  const double lse = torch::logsumexp(log_w, 0).item<double>();
  log_z += lse - std::log(static_cast<double>(log_w.size(0)));
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  auto index = systematic_resample(log_w, uniform(rng));
  log_w = torch::zeros_like(log_w);
  ++events;
  return index;
}

// U_t(y) and its gradient, with the two parts they are made of kept apart so that the next
// temperature can reuse them: the path log q (does not depend on t) and V(., t) (on the
// geometric path U at every t). A part not needed at this t (log q at t = 1) is undefined.
struct Potential {
  torch::Tensor u;                  // (B,) float64, U_t(y)
  torch::Tensor grad;               // (B, M, n)
  torch::Tensor log_q, grad_log_q;  // path_log_prob(y) (float64) and its gradient
  torch::Tensor v, grad_v;          // V(y, t) (float64) and its gradient
};

// U_t(y) = -(1 - t) path_log_prob(y) + t V(y, t) and its gradient in y; on the geometric path
// V(y, t) is U(y) at every t. `known` holds parts already evaluated at this same y: its log q
// part is reused, and on the geometric path its V part too (the soft-core V depends on t).
Potential potential(MintPrior& prior, const AnchoredEnergy& energy, const torch::Tensor& y, double t,
                    bool geometric, const Potential* known = nullptr) {
  Potential p;
  p.u = torch::zeros({y.size(0)}, y.options().dtype(torch::kFloat64));
  p.grad = torch::zeros_like(y);
  if (t < 1) {
    if (known && known->log_q.defined()) {
      p.log_q = known->log_q;
      p.grad_log_q = known->grad_log_q;
    } else {
      // Over slices of chains: a prior averaged over G relabellings holds G copies of every chain
      // in its autograd graph, which would otherwise grow with the chunk without bound.
      const int64_t slice = std::max<int64_t>(1, kPriorConfigurationsPerPass / prior->symmetry_count());
      std::vector<torch::Tensor> values, grads;
      for (int64_t start = 0; start < y.size(0); start += slice) {
        torch::AutoGradMode enable(true);
        auto yy = y.narrow(0, start, std::min(slice, y.size(0) - start)).detach().requires_grad_(true);
        auto log_q = prior->path_log_prob(yy);
        grads.push_back(torch::autograd::grad({log_q.sum()}, {yy})[0].detach().to(y.scalar_type()));
        values.push_back(log_q.detach().to(torch::kFloat64));
      }
      p.log_q = values.size() == 1 ? values[0] : torch::cat(values, 0);
      p.grad_log_q = grads.size() == 1 ? grads[0] : torch::cat(grads, 0);
    }
    p.u = p.u - (1 - t) * p.log_q;
    p.grad = p.grad - (1 - t) * p.grad_log_q;
  }
  if (t > 0) {
    if (geometric && known && known->v.defined()) {
      p.v = known->v;
      p.grad_v = known->grad_v;
    } else {
      auto vg = energy.value_and_grad(y.detach(), geometric ? 1.0 : t);
      p.v = vg.value.detach().to(torch::kFloat64);
      p.grad_v = vg.grad.detach().to(y.scalar_type());
    }
    p.u = p.u + t * p.v;
    p.grad = p.grad + t * p.grad_v;
  }
  return p;
}

// Applies f to every defined tensor of the two potentials (both hold the same parts).
template <typename F>
void for_each_part(Potential& a, const Potential& b, F f) {
  for (auto [x, y] : {std::pair<torch::Tensor*, const torch::Tensor*>{&a.u, &b.u}, {&a.grad, &b.grad},
                      {&a.log_q, &b.log_q}, {&a.grad_log_q, &b.grad_log_q}, {&a.v, &b.v},
                      {&a.grad_v, &b.grad_v}})
    if (x->defined() && y->defined()) *x = f(*x, *y);
    else *x = torch::Tensor();
}

// The chains' potentials after resampling to `index`.
void select_chains(Potential& cur, const torch::Tensor& index) {
  for_each_part(cur, cur, [&](const torch::Tensor& x, const torch::Tensor&) { return x.index_select(0, index); });
}

// The Metropolis test of a move: each chain takes its proposal (at `proposed`) with probability
// min(1, e^log_alpha), a non-finite log_alpha rejects; updates y and cur, returns the acceptance rate.
double metropolis_update(torch::Tensor& y, Potential& cur, const torch::Tensor& proposal, const Potential& proposed,
                         const torch::Tensor& log_alpha) {
  auto u = torch::rand({y.size(0)}, log_alpha.options());
  auto accept = torch::isfinite(log_alpha) & (torch::log(u) < log_alpha);
  auto accept3 = accept.view({-1, 1, 1});
  y = torch::where(accept3, proposal, y);
  for_each_part(cur, proposed, [&](const torch::Tensor& now, const torch::Tensor& next) {
    return torch::where(now.dim() == 1 ? accept : accept3, next, now);
  });
  return accept.to(torch::kFloat64).mean().item<double>();
}

// One MALA move for exp(-U_t) with step h; updates y and cur, returns the acceptance rate.
double mala_move(MintPrior& prior, const AnchoredEnergy& energy, torch::Tensor& y, Potential& cur,
                 double t, bool geometric, double h) {
  auto xi = torch::randn_like(y);
  auto proposal = y - h * cur.grad + std::sqrt(2 * h) * xi;
  auto p = potential(prior, energy, proposal, t, geometric);
  auto back = y - proposal + h * p.grad;
  // log pi(y') q(y | y') - log pi(y) q(y' | y); q(y' | y) has exponent -|xi|^2 / 2.
  auto log_alpha = (cur.u - p.u) +
                   (0.5 * xi.pow(2).sum({1, 2}) - back.pow(2).sum({1, 2}) / (4 * h)).to(torch::kFloat64);
  return metropolis_update(y, cur, proposal, p, log_alpha);
}

// One HMC move for exp(-U_t): L leapfrog steps of size sqrt(2 h) with unit mass, then a
// Metropolis test on the Hamiltonian; updates y and cur, returns the acceptance rate.
double hmc_move(MintPrior& prior, const AnchoredEnergy& energy, torch::Tensor& y, Potential& cur, double t,
                bool geometric, double h, int64_t leapfrog) {
  const double eps = std::sqrt(2 * h);
  auto p0 = torch::randn_like(y);
  auto p = p0 - 0.5 * eps * cur.grad;
  auto q = y + eps * p;
  Potential end = potential(prior, energy, q, t, geometric);
  for (int64_t l = 1; l < leapfrog; ++l) {
    p = p - eps * end.grad;
    q = q + eps * p;
    end = potential(prior, energy, q, t, geometric);
  }
  p = p - 0.5 * eps * end.grad;
  auto log_alpha = (cur.u - end.u) + (0.5 * (p0.pow(2).sum({1, 2}) - p.pow(2).sum({1, 2}))).to(torch::kFloat64);
  return metropolis_update(y, cur, q, end, log_alpha);
}

// One independence Metropolis move for exp(-U_t): every chain proposes a fresh prior draw y'
// and takes it with min(1, exp(-U_t(y')) q(y) / (exp(-U_t(y)) q(y'))); returns the acceptance rate.
// Where the path's log q is the exact one, the log q that U_t already holds is used.
double independence_move(MintPrior& prior, const AnchoredEnergy& energy, torch::Tensor& y, Potential& cur,
                         double t, bool geometric) {
  auto proposal = prior->sample(y.size(0)).to(y.scalar_type());
  auto p = potential(prior, energy, proposal, t, geometric);
  const bool exact = prior->path_log_prob_is_exact();
  auto log_q_now = exact && cur.log_q.defined() ? cur.log_q : prior->log_prob(y).detach().to(torch::kFloat64);
  auto log_q_new = exact && p.log_q.defined() ? p.log_q : prior->log_prob(proposal).detach().to(torch::kFloat64);
  auto log_alpha = (cur.u - p.u) + (log_q_now - log_q_new);
  return metropolis_update(y, cur, proposal, p, log_alpha);
}

struct ChunkResult {
  torch::Tensor y, log_w;
  int64_t resampling_events = 0;
  Dropped dropped;                 // SMC: set to weight zero before a resampling or at the end
  std::vector<double> acceptance;  // per temperature
  double independence_acceptance = 0;
};

// MALA-AIS / SMC on B chains with per-temperature step sizes h (T entries). With `online` (the
// pilot, whose weights are discarded) h adapts after every move and carries to the next
// temperature; otherwise h is fixed for the whole chunk.
ChunkResult run_mala_chunk(MintPrior& prior, const AnchoredEnergy& energy, const AnnealOptions& o,
                           int64_t count, std::vector<double>& h, bool online, std::mt19937_64& rng) {
  torch::NoGradGuard no_grad;
  const int64_t T = o.steps;
  const bool resample = anneal_method_resamples(o.method);
  const double length = energy.energy().length_scale();
  const double h_max = o.max_step_size * length * length, h_min = 1e-12 * length * length;
  ChunkResult out;
  out.acceptance.assign(static_cast<size_t>(T), 0.0);
  auto y = prior->sample(count);
  auto log_w = -prior->log_prob(y).detach().to(torch::kFloat64);
  Potential cur;
  double log_z = 0;
  for (int64_t j = 1; j <= T; ++j) {
    const double t = std::pow(static_cast<double>(j) / static_cast<double>(T), o.schedule_power);
    auto next = potential(prior, energy, y, t, o.geometric_path, j == 1 ? nullptr : &cur);
    // j = 1: -U_{t_1}(y_0) - log q(y_0); later: U_{t_{j-1}}(y_{j-1}) - U_{t_j}(y_{j-1}).
    // A weight that is already exactly zero (-inf) stays zero, whatever the increment.
    log_w = j == 1 ? log_w - next.u : torch::where(torch::isneginf(log_w), log_w, log_w + (cur.u - next.u));
    cur = next;
    if (resample && j < T) {
      auto index = maybe_resample(log_w, o.resample_threshold, log_z, out.resampling_events, out.dropped, rng);
      if (index.defined()) {
        y = y.index_select(0, index);
        select_chains(cur, index);
      }
    }
    double step = h[static_cast<size_t>(j - 1)], accepted = 0;
    for (int64_t m = 0; m < o.moves; ++m) {
      const double rate = o.leapfrog == 1 ? mala_move(prior, energy, y, cur, t, o.geometric_path, step)
                                          : hmc_move(prior, energy, y, cur, t, o.geometric_path, step, o.leapfrog);
      accepted += rate;
      if (online) step = std::clamp(step * std::exp(kGain * (rate - o.target_acceptance)), h_min, h_max);
    }
    out.acceptance[static_cast<size_t>(j - 1)] = accepted / static_cast<double>(o.moves);
    for (int64_t m = 0; m < o.independence; ++m)
      out.independence_acceptance +=
          independence_move(prior, energy, y, cur, t, o.geometric_path) / static_cast<double>(o.independence * T);
    if (online) {
      h[static_cast<size_t>(j - 1)] = step;
      if (j < T) h[static_cast<size_t>(j)] = step;
    }
  }
  out.y = y;
  out.log_w = (resample ? sanitize(log_w, out.dropped) : log_w) + log_z;
  return out;
}

// The Julep kernel's increments (§4) on B chains; with resampling the intermediate weights use
// gamma_j = exp(-U_{t_j}) (gamma_0 = q exactly, gamma_T = exp(-V(., 1))), which telescope to
// the path weight of §4.
ChunkResult run_julep_chunk(JulepSampler& kernel, const AnnealOptions& o, int64_t count,
                            std::mt19937_64& grid_rng, std::mt19937_64& rng) {
  ChunkResult out;
  auto times = kernel->time_grid(grid_rng);
  if (!anneal_method_resamples(o.method)) {
    auto batch = kernel->simulate(count, times, /*keep_path=*/false);
    out.y = batch.final.detach();
    out.log_w = batch.log_w.detach();
    return out;
  }
  const int64_t T = kernel->options().steps;
  auto state = kernel->start(kernel->prior()->sample(count), times, /*potential=*/true);
  torch::Tensor log_gamma, log_w;
  {
    torch::NoGradGuard no_grad;
    log_gamma = kernel->prior()->log_prob(state.y).detach().to(torch::kFloat64);
    log_w = torch::zeros_like(log_gamma);
  }
  double log_z = 0;
  for (int64_t j = 1; j <= T; ++j) {
    auto increment = kernel->advance(state, times, j, {}, /*potential=*/true);
    torch::NoGradGuard no_grad;
    auto next_gamma = -state.point.u;
    log_w = torch::where(torch::isneginf(log_w), log_w, log_w + increment + (next_gamma - log_gamma));
    log_gamma = next_gamma;
    if (j < T) {
      auto index = maybe_resample(log_w, o.resample_threshold, log_z, out.resampling_events, out.dropped, rng);
      if (index.defined()) {
        state = state.index_select(index);
        log_gamma = log_gamma.index_select(0, index);
      }
    }
  }
  out.y = state.y.detach();
  out.log_w = sanitize(log_w, out.dropped) + log_z;
  return out;
}

// The starting MALA/HMC step size of every temperature: options.step_size, at most
// max_step_size (both in units of the squared length scale).
std::vector<double> initial_step_sizes(const AnnealOptions& o, const AnchoredEnergy& energy) {
  const double length = energy.energy().length_scale();
  return std::vector<double>(static_cast<size_t>(o.steps), std::min(o.step_size, o.max_step_size * length * length));
}

// Tunes `h` on o.pilot forward chains of their own streams, whose weights are discarded.
void run_pilot(MintPrior& prior, const AnchoredEnergy& energy, const AnnealOptions& o, uint64_t seed,
               std::vector<double>& h) {
  if (o.pilot <= 0) return;
  torch::manual_seed(seed);
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), 0x5a3cu};
  std::mt19937_64 pilot_rng(seq);
  run_mala_chunk(prior, energy, o, o.pilot, h, /*online=*/true, pilot_rng);
}

}  // namespace

AnnealResult anneal(const AnnealOptions& options, MintPrior prior, const AnchoredEnergy& energy,
                    JulepSampler kernel, int64_t count, uint64_t seed,
                    const std::function<void(int64_t, int64_t)>& progress, const ChunkCache& cache) {
  check_anneal_options(options);
  check(count >= 1, "annealing needs count >= 1");
  const bool mala = anneal_method_uses_mala(options.method);
  if (!mala) {
    check(!kernel.is_empty(), fmt::format("annealing method '{}' needs a Julep kernel", options.method));
    const auto& ko = kernel->options();
    if (options.method == "ula" || options.method == "smc-ula")
      check(!ko.use_a && !ko.use_b && !ko.use_util,
            fmt::format("annealing method '{}' needs the untrained kernel (A = b = Util = 0)", options.method));
  }
  const auto start = std::chrono::steady_clock::now();
  AnnealResult result;
  result.steps = mala ? options.steps : kernel->options().steps;
  std::vector<double> h = initial_step_sizes(options, energy);
  if (mala) result.acceptance.assign(static_cast<size_t>(options.steps), 0.0);
  const auto device = prior->logits.device();
  const auto doubles = [](const std::vector<double>& v) {
    return torch::tensor(v, torch::kFloat64);
  };
  const auto to_vector = [](const torch::Tensor& t) {
    auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  std::vector<torch::Tensor> ys, log_ws;
  int64_t index = 0;
  for (int64_t done = 0; done < count; ++index) {
    const int64_t b = std::min(options.chunk, count - done);
    ChunkResult chunk;
    ChunkRecord record;
    if (cache.load && cache.load(index, record)) {
      check(record.count("y") && record.count("log_w") && record["y"].size(0) == b,
            fmt::format("the kept chunk {} does not match this run ({} chains expected); delete the kept chunks "
                        "to draw them again", index, b));
      chunk.y = record["y"].to(device);
      chunk.log_w = record["log_w"].to(device);
      auto counts = record["counts"].to(torch::kCPU);
      chunk.resampling_events = counts[0].item<int64_t>();
      chunk.dropped.nan = counts[1].item<int64_t>();
      chunk.dropped.overflow = counts[2].item<int64_t>();
      if (mala) {
        chunk.acceptance = to_vector(record["acceptance"]);
        chunk.independence_acceptance = to_vector(record["independence_acceptance"]).at(0);
        result.step_sizes = to_vector(record["h_used"]);
        h = to_vector(record["h_next"]);
      }
    } else {
      // The pilot tunes the first chunk's step sizes; later chunks start from the one before.
      if (mala && index == 0) run_pilot(prior, energy, options, seed, h);
      // Streams of this chunk's own: it draws the same whether or not earlier chunks ran here.
      seed_chunk(seed, index);
      auto grid_rng = chunk_rng(seed, index, 1);  // the time grid, as sample_julep draws it
      auto rng = chunk_rng(seed, index, 2);       // resampling uniforms
      if (mala) {
        result.step_sizes = h;
        chunk = run_mala_chunk(prior, energy, options, b, h, /*online=*/false, rng);
        // The next chunks' step sizes from this chunk's acceptance (never this chunk's own).
        const double length = energy.energy().length_scale();
        for (size_t j = 0; j < h.size(); ++j)
          h[j] = std::clamp(h[j] * std::exp(kGain * (chunk.acceptance[j] - options.target_acceptance)),
                            1e-12 * length * length, options.max_step_size * length * length);
      } else {
        chunk = run_julep_chunk(kernel, options, b, grid_rng, rng);
      }
      if (cache.save) {
        record = {{"y", chunk.y.to(torch::kCPU)},
                  {"log_w", chunk.log_w.to(torch::kCPU)},
                  {"counts", torch::tensor({chunk.resampling_events, chunk.dropped.nan, chunk.dropped.overflow},
                                           torch::kLong)}};
        if (mala) {
          record["acceptance"] = doubles(chunk.acceptance);
          record["independence_acceptance"] = doubles({chunk.independence_acceptance});
          record["h_used"] = doubles(result.step_sizes);
          record["h_next"] = doubles(h);
        }
        cache.save(index, record);
      }
    }
    if (mala) {
      for (size_t j = 0; j < h.size(); ++j)
        result.acceptance[j] += chunk.acceptance[j] * static_cast<double>(b) / static_cast<double>(count);
      result.independence_acceptance +=
          chunk.independence_acceptance * static_cast<double>(b) / static_cast<double>(count);
    }
    ys.push_back(chunk.y);
    log_ws.push_back(chunk.log_w);
    result.resampling_events += chunk.resampling_events;
    result.num_nan += chunk.dropped.nan;
    result.num_overflow += chunk.dropped.overflow;
    done += b;
    if (progress) progress(done, count);
  }
  result.y = torch::cat(ys);
  result.log_w = torch::cat(log_ws);
  auto summary = summarize_log_weights(result.log_w);
  result.log_z = summary.log_z;
  result.ess = summary.ess;
  result.num_non_finite = summary.num_samples - summary.num_finite;
  result.num_nan += summary.num_nan;
  result.num_overflow += summary.num_overflow;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

AnnealResult reverse_anneal(const AnnealOptions& options, MintPrior prior, const AnchoredEnergy& energy,
                            const torch::Tensor& exact, uint64_t seed,
                            const std::function<void(int64_t, int64_t)>& progress) {
  check_anneal_options(options);
  check(options.method == "mala",
        fmt::format("reverse annealing runs MALA/HMC moves without resampling (method mala), not '{}'", options.method));
  check(exact.dim() == 3 && exact.size(0) >= 1 && exact.size(1) == energy.num_free() && exact.size(2) == energy.dim(),
        fmt::format("reverse annealing needs anchored configurations of shape (B >= 1, {}, {}), got {}",
                    energy.num_free(), energy.dim(), fmt::join(exact.sizes(), " x ")));
  const auto start = std::chrono::steady_clock::now();
  const int64_t T = options.steps, count = exact.size(0);
  std::vector<double> h = initial_step_sizes(options, energy);
  run_pilot(prior, energy, options, seed, h);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(prior->logits.device());
  torch::NoGradGuard no_grad;
  AnnealResult result;
  result.steps = T;
  result.step_sizes = h;
  result.acceptance.assign(static_cast<size_t>(T), 0.0);
  const auto time = [&](int64_t j) {
    return std::pow(static_cast<double>(j) / static_cast<double>(T), options.schedule_power);
  };
  std::vector<torch::Tensor> ys, log_ws;
  for (int64_t done = 0, index = 0; done < count; ++index) {
    const int64_t b = std::min(options.chunk, count - done);
    seed_chunk(seed, index);
    auto y = exact.narrow(0, done, b).to(f64).clone();
    Potential cur = potential(prior, energy, y, time(T), options.geometric_path);
    auto log_w = torch::zeros({b}, y.options().dtype(torch::kFloat64));
    for (int64_t j = T - 1; j >= 1; --j) {
      const double t = time(j);
      auto next = potential(prior, energy, y, t, options.geometric_path, &cur);
      log_w = log_w + (cur.u - next.u);
      cur = next;
      double accepted = 0;
      for (int64_t m = 0; m < options.moves; ++m)
        accepted += options.leapfrog == 1
                        ? mala_move(prior, energy, y, cur, t, options.geometric_path, h[static_cast<size_t>(j - 1)])
                        : hmc_move(prior, energy, y, cur, t, options.geometric_path, h[static_cast<size_t>(j - 1)],
                                   options.leapfrog);
      result.acceptance[static_cast<size_t>(j - 1)] +=
          accepted / static_cast<double>(options.moves) * static_cast<double>(b) / static_cast<double>(count);
      for (int64_t m = 0; m < options.independence; ++m)
        independence_move(prior, energy, y, cur, t, options.geometric_path);
    }
    // The last increment, to the prior itself: log q(y_0) - log pi_1(y_0) with the exact log q.
    log_w = log_w + cur.u + prior->log_prob(y).detach().to(torch::kFloat64);
    ys.push_back(y);
    log_ws.push_back(log_w);
    done += b;
    if (progress) progress(done, count);
  }
  result.y = torch::cat(ys);
  result.log_w = torch::cat(log_ws);
  auto summary = summarize_log_weights(result.log_w);
  result.log_z = -summary.log_z;
  result.ess = summary.ess;
  result.num_non_finite = summary.num_samples - summary.num_finite;
  result.num_nan = summary.num_nan;
  result.num_overflow = summary.num_overflow;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace mintjulep
