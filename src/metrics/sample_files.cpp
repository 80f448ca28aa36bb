// Weighted configurations from the .npz files of `mintjulep sample` and `mintjulep md`, for
// `mintjulep metrics` and the reference of `mintjulep bench`.
#include <mintjulep/energy.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/metrics.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

namespace mintjulep {
namespace {

// Energies in slices of 4096 configurations, so that a long md file needs little memory; x
// (S, N, n) has passed Energy::check_positions.
torch::Tensor compute_energies(const Energy& energy, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < x.size(0); start += 4096)
    parts.push_back(energy.energy(x.narrow(0, start, std::min<int64_t>(4096, x.size(0) - start)), 1.0)
                        .to(torch::kCPU, torch::kFloat64));
  return torch::cat(parts);
}

}  // namespace

WeightedConfigurations read_weighted_configurations(const std::string& path, const Energy* energy,
                                                    const ReadConfigurationsOptions& opt) {
  const std::string& role = opt.role;
  auto arrays = read_npz(path);
  check(arrays.count("positions"),
        fmt::format("{} '{}' has no 'positions' array; give the output of mintjulep sample or md", role, path));
  WeightedConfigurations out;
  auto x = arrays["positions"].to(torch::kFloat64);
  check(x.dim() == 3 || x.dim() == 4,
        fmt::format("{} '{}': positions must be (S, N, n) samples or (F, R, N, n) md frames, got {} dimensions",
                    role, path, x.dim()));
  torch::Tensor u = arrays.count("energies") ? arrays["energies"].to(torch::kFloat64) : torch::Tensor();
  // One row per configuration (md frames x replicas flattened) must fit the system.
  if (energy) energy->check_positions(x.dim() == 4 ? x.flatten(0, 1) : x, role + " '" + path + "': positions");
  if (x.dim() == 4) {  // md: (F, R, N, n), equally weighted after the burn-in
    check(opt.burn_in >= 0 && opt.burn_in < x.size(0),
          fmt::format("{} {} must be below the {} frames of '{}'", opt.burn_in_name, opt.burn_in, x.size(0), path));
    if (u.defined())
      check(u.dim() == 2 && u.size(0) == x.size(0) && u.size(1) == x.size(1),
            fmt::format("{} '{}': energies have shape {}, positions {} frames x {} replicas", role, path,
                        fmt::join(u.sizes(), "x"), x.size(0), x.size(1)));
    out.trajectory = true;
    out.frames = x.size(0) - opt.burn_in;
    out.replicas = x.size(1);
    x = x.narrow(0, opt.burn_in, out.frames);
    if (u.defined())
      u = u.narrow(0, opt.burn_in, out.frames);
    else if (energy)
      u = compute_energies(*energy, x.reshape({-1, x.size(2), x.size(3)})).reshape({out.frames, out.replicas});
    if (u.defined()) out.energy_series = u;
    x = x.reshape({-1, x.size(2), x.size(3)});
    out.log_w = torch::zeros({x.size(0)}, torch::kFloat64);
  } else {
    const int64_t s = x.size(0);
    if (!opt.reference) {
      check(arrays.count("log_w"), fmt::format("{} '{}' has positions but no 'log_w' importance weights", role, path));
      out.log_w = arrays["log_w"].to(torch::kFloat64);
      check(out.log_w.dim() == 1 && out.log_w.size(0) == s,
            fmt::format("{} '{}': log_w has shape ({}) for {} configurations", role, path,
                        fmt::join(out.log_w.sizes(), ", "), s));
    } else {
      // A reference must be equally weighted (e.g. the output of sample --resample).
      if (arrays.count("log_w")) {
        auto lw = arrays["log_w"].to(torch::kFloat64);
        check(lw.numel() == s && (lw == lw.flatten()[0]).all().item<bool>(),
              fmt::format("{} '{}' has unequal importance weights; give unweighted samples "
                          "(mintjulep md, or sample --resample)", role, path));
      }
      out.log_w = torch::zeros({s}, torch::kFloat64);
    }
    if (u.defined())
      check(u.dim() == 1 && u.size(0) == s,
            fmt::format("{} '{}': energies have shape ({}) for {} configurations", role, path,
                        fmt::join(u.sizes(), ", "), s));
    else if (energy)
      u = compute_energies(*energy, x);
  }
  check(u.defined(), fmt::format("{} '{}' has no 'energies'; give --system to compute them", role, path));
  check(x.size(0) >= 1, fmt::format("{} '{}' holds no configurations", role, path));
  out.positions = x;
  out.energies = u.flatten();
  return out;
}

}  // namespace mintjulep
