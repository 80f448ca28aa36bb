#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/ramachandran.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace mintjulep {

BackboneAtoms find_backbone(const Topology& top) {
  for (size_t i = 0; i < top.atoms.size(); ++i) {
    if (top.atoms[i].name != "CA") continue;
    const int64_t res = top.atoms[i].residue_index;
    BackboneAtoms a;
    a.ca = static_cast<int64_t>(i);
    a.n = top.find_atom("N", res);
    a.c = top.find_atom("C", res);
    a.cb = top.find_atom("CB", res);
    a.ha = top.find_atom("HA", res);
    a.c_prev = top.find_atom("C", res - 1);
    a.n_next = top.find_atom("N", res + 1);
    if (a.n >= 0 && a.c >= 0 && a.c_prev >= 0 && a.n_next >= 0) return a;
  }
  throw Error("the topology has no residue with CA, N and C between a C of the previous and an N "
              "of the next residue, so phi/psi are undefined (expected e.g. ACE-ALA-NME)");
}

torch::Tensor dihedral(const torch::Tensor& x, int64_t i, int64_t j, int64_t k, int64_t l) {
  auto b1 = x.select(1, j) - x.select(1, i);
  auto b2 = x.select(1, k) - x.select(1, j);
  auto b3 = x.select(1, l) - x.select(1, k);
  auto n1 = torch::cross(b1, b2, -1), n2 = torch::cross(b2, b3, -1);
  return torch::atan2(b2.norm(2, -1) * (b1 * n2).sum(-1), (n1 * n2).sum(-1));
}

torch::Tensor chirality(const torch::Tensor& x, const BackboneAtoms& a) {
  check(a.cb >= 0, "chirality needs a CB atom in the residue of the CA");
  auto ca = x.select(1, a.ca);
  auto volume = ((x.select(1, a.n) - ca) *
                 torch::cross(x.select(1, a.c) - ca, x.select(1, a.cb) - ca, -1))
                    .sum(-1);
  return torch::where(volume >= 0, torch::ones_like(volume), -torch::ones_like(volume));
}

torch::Tensor mirror_to_l(const torch::Tensor& x, const BackboneAtoms& a) {
  return x * chirality(x, a).reshape({-1, 1, 1});
}

namespace {
torch::Tensor bin_index(const torch::Tensor& angle, int64_t bins) {
  auto u = (angle + M_PI) / (2.0 * M_PI);  // [0, 1]
  return (u * bins).floor().to(torch::kLong).clamp(0, bins - 1);
}

torch::Tensor checked_weights(const torch::Tensor& phi, const torch::Tensor& weights) {
  check(phi.dim() == 1 && weights.dim() == 1 && weights.size(0) == phi.size(0),
        fmt::format("need one weight per configuration ({} angles, {} weights)", phi.size(0),
                    weights.numel()));
  auto w = weights.to(torch::kFloat64);
  check(torch::isfinite(w).all().item<bool>() && (w >= 0).all().item<bool>(),
        "weights must be finite and non-negative");
  check(w.sum().item<double>() > 0, "all weights are zero");
  return w;
}
}  // namespace

torch::Tensor ramachandran_histogram(const torch::Tensor& phi, const torch::Tensor& psi,
                                     const torch::Tensor& weights, int64_t bins) {
  check(bins > 0, "the histogram needs at least one bin");
  auto w = checked_weights(phi, weights);
  auto flat = bin_index(phi.to(torch::kFloat64), bins) * bins + bin_index(psi.to(torch::kFloat64), bins);
  auto h = torch::zeros({bins * bins}, torch::kFloat64).index_add_(0, flat.cpu(), w.cpu());
  return (h / h.sum()).reshape({bins, bins});
}

BasinFractions basin_fractions(const torch::Tensor& phi, const torch::Tensor& psi,
                               const torch::Tensor& weights) {
  auto w = checked_weights(phi, weights).cpu();
  auto phi_deg = phi.to(torch::kFloat64).cpu() * (180.0 / M_PI);
  auto psi_deg = psi.to(torch::kFloat64).cpu() * (180.0 / M_PI);
  auto left = phi_deg >= 0;
  auto alpha_r = (~left) & (psi_deg >= -120) & (psi_deg < 50);
  const double total = w.sum().item<double>();
  BasinFractions f;
  f.alpha_l_c7ax = (w * left).sum().item<double>() / total;
  f.alpha_r = (w * alpha_r).sum().item<double>() / total;
  f.c7eq_c5 = 1.0 - f.alpha_l_c7ax - f.alpha_r;
  return f;
}

double jensen_shannon(const torch::Tensor& p_in, const torch::Tensor& q_in) {
  check(p_in.sizes() == q_in.sizes(), "the two histograms must have the same shape");
  auto p = p_in.to(torch::kFloat64).flatten().cpu(), q = q_in.to(torch::kFloat64).flatten().cpu();
  check((p >= 0).all().item<bool>() && (q >= 0).all().item<bool>() && p.sum().item<double>() > 0 &&
            q.sum().item<double>() > 0,
        "histograms must be non-negative and not all zero");
  p = p / p.sum();
  q = q / q.sum();
  auto m = 0.5 * (p + q);
  auto kl = [&](const torch::Tensor& a) {
    auto terms = torch::where(a > 0, a * (a / m).log(), torch::zeros_like(a));
    return terms.sum().item<double>();
  };
  return 0.5 * kl(p) + 0.5 * kl(q);
}

void write_ramachandran_png(const std::string& path, const torch::Tensor& histogram,
                            int64_t pixels_per_bin) {
  check(histogram.dim() == 2 && histogram.size(0) == histogram.size(1),
        "a Ramachandran histogram is a square (bins, bins) array");
  const int64_t bins = histogram.size(0), size = bins * pixels_per_bin;
  auto h = histogram.to(torch::kFloat64).cpu().contiguous();
  const double peak = h.max().item<double>();
  check(peak > 0, "the histogram is empty");
  auto ha = h.accessor<double, 2>();
  // Free energy -log(h / peak) in kT, clipped at 8 kT, on a dark-to-light colour ramp.
  constexpr double kMaxFreeEnergy = 8.0;
  static const std::array<std::array<double, 3>, 5> ramp = {
      {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}};
  std::vector<uint8_t> rgb(static_cast<size_t>(size * size * 3), 255);
  for (int64_t row = 0; row < size; ++row) {
    const int64_t psi_bin = bins - 1 - row / pixels_per_bin;  // psi increases upwards
    for (int64_t col = 0; col < size; ++col) {
      const int64_t phi_bin = col / pixels_per_bin;
      uint8_t* px = &rgb[static_cast<size_t>((row * size + col) * 3)];
      const double value = ha[phi_bin][psi_bin];
      if (value > 0) {
        const double f = std::min(-std::log(value / peak), kMaxFreeEnergy) / kMaxFreeEnergy;
        const double pos = f * (ramp.size() - 1);
        const size_t k = std::min<size_t>(static_cast<size_t>(pos), ramp.size() - 2);
        const double frac = pos - static_cast<double>(k);
        for (int c = 0; c < 3; ++c)
          px[c] = static_cast<uint8_t>(ramp[k][c] + frac * (ramp[k + 1][c] - ramp[k][c]) + 0.5);
      }
      // Grid lines at -90, 0 and 90 degrees.
      for (int64_t q = 1; q <= 3; ++q) {
        const int64_t line = q * size / 4;
        if (col == line || row == line)
          for (int c = 0; c < 3; ++c) px[c] = static_cast<uint8_t>(px[c] * 0.5 + 64);
      }
    }
  }
  write_png_rgb(path, size, size, rgb);
}

}  // namespace mintjulep
