#include <mintjulep/error.hpp>
#include <mintjulep/internal_harmonic.hpp>

#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/linalg.h>

#include <cmath>

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Indices of the distinct structures among z (C, D), lowest energy first: one is dropped when
// its canonical positions (or those of its mirror image) are within `tolerance` (root mean
// square per atom) of one kept before it.
std::vector<int64_t> distinct_minima(const MintPrior& prior, const torch::Tensor& z, const torch::Tensor& energies,
                                     double tolerance) {
  const int64_t C = z.size(0), M = prior->options().num_free;
  auto shape = prior->from_frame_coordinates(z).flatten(1);
  auto mirror = prior->from_frame_coordinates(prior->reflect_frame_coordinates(z)).flatten(1);
  auto rms = torch::minimum(torch::cdist(shape, shape), torch::cdist(shape, mirror)) / std::sqrt(double(M));
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

torch::Tensor internal_hessian(const MintPrior& prior, const AnchoredEnergy& energy, const torch::Tensor& z) {
  torch::AutoGradMode grad_mode(true);
  auto variable = z.detach().clone().requires_grad_(true);
  auto u = energy.value(prior->from_frame_coordinates(variable), 1.0).to(torch::kFloat64).sum();
  auto grad = torch::autograd::grad({u}, {variable}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  std::vector<torch::Tensor> rows;
  for (int64_t d = 0; d < z.size(1); ++d)
    rows.push_back(torch::autograd::grad({grad.select(1, d).sum()}, {variable}, {}, /*retain_graph=*/true)[0]);
  auto hessian = torch::stack(rows, 1);
  return 0.5 * (hessian + hessian.transpose(1, 2));
}

InternalHarmonicResult initialize_internal_harmonic_prior(MintPrior& prior, const AnchoredEnergy& energy,
                                                          const InternalHarmonicOptions& options) {
  check(prior->internal(), "internal harmonic initialisation needs [prior] family = \"internal\"");
  check(options.starts_per_component >= 1, "harmonic init needs starts_per_component >= 1");
  const int64_t count = options.starts_per_component * prior->options().components;
  auto minima = discover_molecule_minima(energy, prior->zmatrix(), count);
  return initialize_internal_harmonic_prior_from(prior, energy, minima, options);
}

InternalHarmonicResult initialize_internal_harmonic_prior_from(MintPrior& prior, const AnchoredEnergy& energy,
                                                               const torch::Tensor& minima,
                                                               const InternalHarmonicOptions& options) {
  check(prior->internal(), "internal harmonic initialisation needs [prior] family = \"internal\"");
  check(options.hessian_floor > 0 && options.covariance_scale > 0 && options.merge_tolerance > 0,
        "harmonic init needs hessian_floor, covariance_scale and merge_tolerance > 0");
  torch::NoGradGuard no_grad;
  const int64_t K = prior->options().components;
  const double tolerance = options.merge_tolerance * energy.energy().length_scale();
  auto device = prior->logits.device();
  InternalHarmonicResult result;

  auto y = minima.to(device, torch::kFloat64);
  auto energies = energy.value(y, 1.0).to(torch::kFloat64);
  auto finite = torch::isfinite(energies).nonzero().squeeze(1);
  y = y.index_select(0, finite);
  energies = energies.index_select(0, finite);
  check(y.size(0) >= 1, "harmonic init: no minimised structure has a finite energy");
  result.candidates = y.size(0);
  auto z = prior->frame_coordinates(y);
  auto index = torch::tensor(distinct_minima(prior, z, energies, tolerance), torch::kLong).to(device);
  z = z.index_select(0, index);
  energies = energies.index_select(0, index);
  result.distinct = z.size(0);

  auto hessian = internal_hessian(prior, energy, z);
  auto [eigenvalues, eigenvectors] = torch::linalg::eigh(hessian, "L");
  eigenvalues = eigenvalues.clamp_min(options.hessian_floor) / options.covariance_scale;
  auto precision = torch::matmul(eigenvectors * eigenvalues.unsqueeze(1), eigenvectors.transpose(1, 2));
  precision = 0.5 * (precision + precision.transpose(1, 2));
  // log of each basin's mass: -U + 1/2 log det(2 pi Sigma_z) - log q's Jacobian; the reflection
  // average covers the mirror image (a different labelled minimum of a molecule) too: + log 2.
  const double D = static_cast<double>(z.size(1));
  auto free_energy = -energies + 0.5 * D * std::log(2 * kPi) - 0.5 * eigenvalues.log().sum(1) -
                     prior->log_frame_jacobian(z) + std::log(2.0);

  auto order = std::get<1>(free_energy.sort(0, /*descending=*/true));
  const int64_t used = std::min<int64_t>(K, z.size(0));
  auto slots = order.narrow(0, 0, used).repeat((K + used - 1) / used).narrow(0, 0, K);
  auto copies = torch::bincount(slots, {}, z.size(0)).to(torch::kFloat64);
  auto log_weights = free_energy.index_select(0, slots) - copies.index_select(0, slots).log();
  prior->set_gaussian_components(z.index_select(0, slots), precision.index_select(0, slots), log_weights);

  auto weights = torch::softmax(log_weights, 0).to(torch::kCPU);
  for (int64_t r = 0; r < used; ++r) {
    const int64_t i = order[r].item<int64_t>();
    InternalMinimum m;
    m.y = prior->from_frame_coordinates(z.narrow(0, i, 1)).squeeze(0).to(torch::kCPU);
    m.energy = energies[i].item<double>();
    m.free_energy = free_energy[i].item<double>();
    m.copies = copies[i].item<int64_t>();
    m.weight = weights.index_select(0, (slots == i).nonzero().squeeze(1).to(torch::kCPU)).sum().item<double>();
    result.minima.push_back(m);
  }
  return result;
}

}  // namespace mintjulep
