#include <mintjulep/error.hpp>
#include <mintjulep/harmonic_prior.hpp>
#include <mintjulep/minimize.hpp>

#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <map>
#include <set>
#include <cmath>
#include <numeric>

namespace mintjulep {
namespace {

// Every labelling of the N particles as full permutations, when all particles are
// interchangeable and N! <= limit; otherwise none (too many labellings to cover anyway).
std::vector<std::vector<int64_t>> all_relabellings(const Energy& system, int64_t limit) {
  const int64_t N = system.num_particles();
  if (!system.same_type_particles_interchangeable()) return {};
  const auto types = system.particle_types();
  if (std::adjacent_find(types.begin(), types.end(), std::not_equal_to<>()) != types.end()) return {};
  double count = 1;
  for (int64_t i = 2; i <= N; ++i) count *= static_cast<double>(i);
  if (count > static_cast<double>(limit)) return {};
  std::vector<int64_t> p(static_cast<size_t>(N));
  std::iota(p.begin(), p.end(), 0);
  std::vector<std::vector<int64_t>> result;
  do result.push_back(p);
  while (std::next_permutation(p.begin(), p.end()));
  return result;
}

// Row permutations (of the anchored rows, anchor removed) that relabel interchangeable terminal
// atoms of a molecule: every permutation inside each group of >= 2 atoms of one particle type
// bonded only to the same atom (the three hydrogens of a methyl group: 6 each). Empty when there
// are none, the system has no bonds, or the product exceeds `limit`.
std::vector<std::vector<int64_t>> terminal_relabellings(const AnchoredEnergy& energy, int64_t limit) {
  const Energy& system = energy.energy();
  const auto bonds = system.bonds();
  if (bonds.empty() || system.same_type_particles_interchangeable()) return {};
  const int64_t N = system.num_particles(), anchor = energy.anchor();
  const auto types = system.particle_types();
  std::vector<std::vector<int64_t>> neighbours(static_cast<size_t>(N));
  for (const auto& b : bonds) {
    neighbours[static_cast<size_t>(b[0])].push_back(b[1]);
    neighbours[static_cast<size_t>(b[1])].push_back(b[0]);
  }
  std::vector<std::vector<int64_t>> groups;
  for (int64_t centre = 0; centre < N; ++centre) {
    std::map<int64_t, std::vector<int64_t>> by_type;
    for (int64_t j : neighbours[static_cast<size_t>(centre)])
      if (neighbours[static_cast<size_t>(j)].size() == 1 && j != anchor) by_type[types[static_cast<size_t>(j)]].push_back(j);
    for (auto& [type, atoms] : by_type)
      if (atoms.size() >= 2) groups.push_back(atoms);
  }
  const auto row = [&](int64_t particle) { return particle < anchor ? particle : particle - 1; };
  std::vector<int64_t> identity(static_cast<size_t>(N - 1));
  std::iota(identity.begin(), identity.end(), 0);
  std::vector<std::vector<int64_t>> result = {identity};
  for (const auto& g : groups) {
    std::vector<int64_t> p = g;
    std::sort(p.begin(), p.end());
    std::vector<std::vector<int64_t>> orders;
    do orders.push_back(p);
    while (std::next_permutation(p.begin(), p.end()));
    if (static_cast<double>(result.size()) * static_cast<double>(orders.size()) > static_cast<double>(limit)) return {};
    std::vector<std::vector<int64_t>> next;
    for (const auto& r : result)
      for (const auto& o : orders) {
        auto q = r;
        for (size_t i = 0; i < g.size(); ++i) q[static_cast<size_t>(row(g[i]))] = r[static_cast<size_t>(row(o[i]))];
        next.push_back(q);
      }
    result = std::move(next);
  }
  return result.size() > 1 ? result : std::vector<std::vector<int64_t>>{};
}

// Sigma -> Sigma + sd^2 w w^T for each rotor, w = 1 on the torsions of its three atoms (a rigid
// turn of the group), as a rank-one update of the precision P (Sherman-Morrison), (C, D, D).
torch::Tensor widen_rotors(const MintPrior& prior, torch::Tensor precision, double sd) {
  const ZMatrix& zm = prior->zmatrix();
  const int64_t anchor = prior->options().anchor;
  for (const auto& rotor : prior->options().rotors) {
    std::vector<int64_t> torsions;
    std::set<std::pair<int64_t, int64_t>> axes;
    for (int64_t p : rotor) {
      const int64_t row = p < anchor ? p : p - 1;
      for (size_t j = 0; j < zm.atoms().size(); ++j)
        if (zm.atoms()[j] == row && zm.proper()[j]) {
          torsions.push_back(zm.torsion_index()[j]);
          axes.insert({zm.parents()[j], zm.grandparents()[j]});
        }
    }
    if (torsions.size() != 3 || axes.size() != 1) continue;  // not three torsions about one bond
    auto w = torch::zeros({precision.size(1), 1}, precision.options());
    for (int64_t t : torsions) w[t] = 1.0;
    auto pw = torch::matmul(precision, w);                              // (C, D, 1)
    auto wpw = torch::matmul(w.t(), pw);                                // (C, 1, 1)
    precision = precision - sd * sd * torch::matmul(pw, pw.transpose(1, 2)) / (1 + sd * sd * wpw);
  }
  return precision;
}

// Canonical positions (C, M * n) of frame coordinates z and of their mirror images.
std::pair<torch::Tensor, torch::Tensor> canonical_shapes(const MintPrior& prior, const torch::Tensor& z) {
  return {prior->from_frame_coordinates(z).flatten(1),
          prior->from_frame_coordinates(prior->reflect_frame_coordinates(z)).flatten(1)};
}

// Indices of the distinct configurations among z (C, D), lowest energy first: a candidate is
// dropped when its canonical positions (or those of its mirror image) are within `tolerance`
// (root mean square per particle) of one kept before it.
// With `relabellings` (row permutations), a candidate is also dropped when a relabelled copy of
// it is within tolerance of one kept: symmetric copies of one basin count once.
std::vector<int64_t> distinct_minima(const MintPrior& prior, const torch::Tensor& z,
                                     const torch::Tensor& energies, double tolerance,
                                     const std::vector<std::vector<int64_t>>& relabellings = {}) {
  const int64_t C = z.size(0), M = prior->options().num_free;
  auto [shape, mirror] = canonical_shapes(prior, z);
  auto rms = torch::minimum(torch::cdist(shape, shape), torch::cdist(shape, mirror));
  for (const auto& p : relabellings) {
    auto index = torch::tensor(p, torch::kLong).to(shape.device());
    auto relabel = [&](const torch::Tensor& s) { return s.view({C, M, -1}).index_select(1, index).flatten(1); };
    rms = torch::minimum(rms, torch::minimum(torch::cdist(shape, relabel(shape)), torch::cdist(shape, relabel(mirror))));
  }
  rms = rms / std::sqrt(double(M));
  auto close = (rms < tolerance).to(torch::kCPU).contiguous();
  auto order = std::get<1>(energies.sort()).to(torch::kCPU).contiguous();
  auto close_a = close.accessor<bool, 2>();
  auto order_a = order.accessor<int64_t, 1>();
  std::vector<int64_t> kept;
  for (int64_t r = 0; r < C; ++r) {
    const int64_t i = order_a[r];
    bool seen = false;
    for (int64_t j : kept) seen = seen || close_a[i][j];
    if (!seen) kept.push_back(i);
  }
  return kept;
}

}  // namespace

std::vector<std::vector<int64_t>> particle_relabellings(const Energy& system, int64_t limit) {
  return all_relabellings(system, limit);
}

std::vector<std::vector<int64_t>> rotor_relabellings(const std::vector<std::vector<int64_t>>& rotors,
                                                     int64_t num_particles) {
  std::vector<std::vector<int64_t>> group(1, std::vector<int64_t>(static_cast<size_t>(num_particles)));
  std::iota(group[0].begin(), group[0].end(), 0);
  for (const auto& rotor : rotors) {
    check(rotor.size() == 3, "a rotor is a group of three interchangeable terminal atoms");
    for (int64_t p : rotor)
      check(p >= 0 && p < num_particles, fmt::format("rotor atom {} is not a particle index in 0..{}", p, num_particles - 1));
    check(group.size() * 3 <= 729, "more than 6 methyl rotors (3^6 relabellings) is too costly to average over");
    std::vector<std::vector<int64_t>> next;
    for (const auto& g : group)
      for (size_t shift = 0; shift < 3; ++shift) {
        auto h = g;
        for (size_t i = 0; i < 3; ++i)
          h[static_cast<size_t>(rotor[i])] = g[static_cast<size_t>(rotor[(i + shift) % 3])];
        next.push_back(h);
      }
    group = std::move(next);
  }
  return group;
}

std::vector<std::vector<int64_t>> terminal_rotors(const Energy& system, int64_t anchor) {
  const auto bonds = system.bonds();
  if (bonds.empty()) return {};
  const int64_t N = system.num_particles();
  const auto types = system.particle_types();
  std::vector<std::vector<int64_t>> neighbours(static_cast<size_t>(N));
  for (const auto& b : bonds) {
    neighbours[static_cast<size_t>(b[0])].push_back(b[1]);
    neighbours[static_cast<size_t>(b[1])].push_back(b[0]);
  }
  std::vector<std::vector<int64_t>> rotors;
  for (int64_t centre = 0; centre < N; ++centre) {
    const auto& around = neighbours[static_cast<size_t>(centre)];
    if (around.size() != 4) continue;
    std::map<int64_t, std::vector<int64_t>> terminal_by_type;
    for (int64_t j : around)
      if (neighbours[static_cast<size_t>(j)].size() == 1) terminal_by_type[types[static_cast<size_t>(j)]].push_back(j);
    for (auto& [type, atoms] : terminal_by_type)
      if (atoms.size() == 3 && std::find(atoms.begin(), atoms.end(), anchor) == atoms.end()) rotors.push_back(atoms);
  }
  return rotors;
}

torch::Tensor random_compact_starts(const AnchoredEnergy& energy, int64_t count) {
  const Energy& system = energy.energy();
  const int64_t N = system.num_particles(), n = system.dim();
  const double radius = 0.6 * system.length_scale() * std::pow(static_cast<double>(N), 1.0 / n);
  auto direction = torch::randn({count, N, n}, torch::kFloat64);
  direction = direction / direction.norm(2, -1, /*keepdim=*/true);
  auto x = direction * radius * torch::rand({count, N, 1}, torch::kFloat64).pow(1.0 / n);
  return energy.to_anchored(x);
}

torch::Tensor frame_hessian(const MintPrior& prior, const AnchoredEnergy& energy, const torch::Tensor& z) {
  torch::AutoGradMode grad_mode(true);
  auto variable = z.detach().clone().requires_grad_(true);
  auto u = energy.value(prior->from_frame_coordinates(variable), 1.0).to(torch::kFloat64).sum();
  auto grad = torch::autograd::grad({u}, {variable}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  const int64_t D = z.size(1);
  std::vector<torch::Tensor> rows;
  for (int64_t d = 0; d < D; ++d)
    rows.push_back(torch::autograd::grad({grad.select(1, d).sum()}, {variable}, {},
                                         /*retain_graph=*/true, /*create_graph=*/false)[0]);
  auto hessian = torch::stack(rows, 1);
  return 0.5 * (hessian + hessian.transpose(1, 2));
}

HarmonicInitResult initialize_harmonic_prior(MintPrior& prior, const AnchoredEnergy& energy,
                                             const HarmonicOptions& options) {
  check(options.starts_per_component >= 1, "harmonic init needs starts_per_component >= 1");
  const int64_t count = options.starts_per_component * prior->options().components;
  if (prior->internal()) {
    // A molecule: random rotamers about the rotatable bonds of the Z-matrix, minimised.
    return initialize_harmonic_prior_from(prior, energy, discover_molecule_minima(energy, prior->zmatrix(), count),
                                          options);
  }
  auto soft = minimize_energy(energy, random_compact_starts(energy, count), 500, /*t=*/0.0);
  auto minimised = minimize_energy(energy, soft.y, 2000, /*t=*/1.0);
  return initialize_harmonic_prior_from(prior, energy, minimised.y, options);
}

HarmonicInitResult initialize_harmonic_prior_from(MintPrior& prior, const AnchoredEnergy& energy,
                                                  const torch::Tensor& minima,
                                                  const HarmonicOptions& options) {
  check(prior->correlated(), "harmonic initialisation needs [prior] family = \"gaussian\" or \"internal\"");
  check(options.hessian_floor > 0 && options.covariance_scale > 0 && options.merge_tolerance > 0,
        "harmonic init needs hessian_floor, covariance_scale and merge_tolerance > 0");
  check(options.tail_weight >= 0 && options.tail_weight < 1 && options.tail_scale > 0,
        "harmonic init needs 0 <= tail_weight < 1 and tail_scale > 0");
  check(options.tail_weight == 0 || prior->options().components % 2 == 0,
        "[prior] tail_weight > 0 needs an even number of components (half are the wide copies)");
  torch::NoGradGuard no_grad;
  const int64_t K = prior->options().components;
  const double tolerance = options.merge_tolerance * energy.energy().length_scale();
  auto device = prior->logits.device();
  HarmonicInitResult result;

  auto y = minima.to(device, torch::kFloat64);
  auto energies = energy.value(y, 1.0).to(torch::kFloat64);
  auto finite = torch::isfinite(energies);
  y = y.index_select(0, finite.nonzero().squeeze(1));
  check(y.size(0) >= 1, "harmonic init: no minimised configuration has a finite energy");
  auto z = prior->frame_coordinates(y);
  auto kept = distinct_minima(prior, z, energies.index_select(0, finite.nonzero().squeeze(1)), tolerance);
  y = y.index_select(0, torch::tensor(kept, torch::kLong).to(device));

  // Every labelling of each distinct minimum is a minimum too.
  const auto labellings = all_relabellings(energy.energy(), options.max_relabellings);
  if (!labellings.empty()) {
    auto full = energy.to_full(y);
    std::vector<torch::Tensor> copies;
    for (const auto& p : labellings)
      copies.push_back(energy.to_anchored(full.index_select(1, torch::tensor(p, torch::kLong).to(device))));
    y = torch::cat(copies, 0);
  }
  result.candidates = y.size(0);
  energies = energy.value(y, 1.0).to(torch::kFloat64);
  z = prior->frame_coordinates(y);
  // Symmetric copies of one basin (a methyl group's hydrogens relabelled): one component
  // covers one copy (the reported log Z is then that of one labelling of those atoms).
  const auto symmetric = options.merge_relabelled ? terminal_relabellings(energy, options.max_relabellings)
                                                  : std::vector<std::vector<int64_t>>{};
  result.relabellings = symmetric.empty() ? 1 : static_cast<int64_t>(symmetric.size());
  kept = distinct_minima(prior, z, energies, tolerance, symmetric);
  auto index = torch::tensor(kept, torch::kLong).to(device);
  z = z.index_select(0, index);
  energies = energies.index_select(0, index);
  result.distinct = z.size(0);

  // Harmonic basins: precision = Hessian in z with eigenvalues floored, then / covariance_scale.
  auto hessian = frame_hessian(prior, energy, z);
  auto [eigenvalues, eigenvectors] = at::linalg_eigh(hessian, "L");
  eigenvalues = eigenvalues.clamp_min(options.hessian_floor) / options.covariance_scale;
  auto precision = torch::matmul(eigenvectors * eigenvalues.unsqueeze(1), eigenvectors.transpose(1, 2));
  if (options.rotor_sd > 0 && prior->internal()) precision = widen_rotors(prior, precision, options.rotor_sd);
  precision = 0.5 * (precision + precision.transpose(1, 2));
  // log of each basin's mass: -U + 1/2 log det(2 pi Sigma) - log q's frame Jacobian; a chiral
  // minimum's component also covers its mirror image, so it counts twice.
  const double D = static_cast<double>(z.size(1));
  auto [shape, mirror] = canonical_shapes(prior, z);
  auto chiral = (shape - mirror).pow(2).sum(1).sqrt() / std::sqrt(double(prior->options().num_free)) > tolerance;
  auto free_energy = -energies + 0.5 * D * std::log(2 * 3.14159265358979323846) - 0.5 * eigenvalues.log().sum(1) -
                     prior->log_frame_jacobian(z) + chiral.to(torch::kFloat64) * std::log(2.0);

  // The K components (K / 2 with wide copies) go to the minima of highest free energy, cycling
  // when there are fewer.
  const bool wide = options.tail_weight > 0;
  const int64_t basins = wide ? K / 2 : K;
  auto order = std::get<1>(free_energy.sort(0, /*descending=*/true));
  const int64_t used = std::min<int64_t>(basins, z.size(0));
  auto slots = order.narrow(0, 0, used).repeat((basins + used - 1) / used).narrow(0, 0, basins);
  auto copies = torch::bincount(slots, {}, z.size(0)).to(torch::kFloat64);
  auto log_weights = free_energy.index_select(0, slots) - copies.index_select(0, slots).log();
  auto means = z.index_select(0, slots);
  auto precisions = precision.index_select(0, slots);
  if (wide) {
    prior->set_gaussian_components(
        torch::cat({means, means}, 0), torch::cat({precisions, precisions / options.tail_scale}, 0),
        torch::cat({log_weights + std::log1p(-options.tail_weight), log_weights + std::log(options.tail_weight)}, 0));
  } else {
    prior->set_gaussian_components(means, precisions, log_weights);
  }

  auto weights = torch::softmax(log_weights, 0).to(torch::kCPU);
  for (int64_t r = 0; r < used; ++r) {
    const int64_t i = order[r].item<int64_t>();
    HarmonicMinimum m;
    m.y = prior->from_frame_coordinates(z.narrow(0, i, 1)).squeeze(0).to(torch::kCPU);
    m.energy = energies[i].item<double>();
    m.free_energy = free_energy[i].item<double>();
    m.copies = copies[i].item<int64_t>() * (wide ? 2 : 1);
    m.weight = weights.index_select(0, (slots == i).nonzero().squeeze(1).to(torch::kCPU)).sum().item<double>();
    m.chiral = chiral[i].item<bool>();
    result.minima.push_back(m);
  }
  return result;
}

}  // namespace mintjulep
