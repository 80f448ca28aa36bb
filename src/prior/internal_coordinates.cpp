#include <mintjulep/error.hpp>
#include <mintjulep/energy.hpp>
#include <mintjulep/internal_coordinates.hpp>
#include <mintjulep/minimize.hpp>

#include <fmt/format.h>

#include <cmath>
#include <deque>
#include <map>

namespace mintjulep {
namespace {

constexpr double kPi = 3.14159265358979323846;

torch::Tensor index_tensor(const std::vector<int64_t>& v, const torch::Device& device) {
  return torch::tensor(v, torch::kLong).to(device);
}

torch::Tensor row_dot(const torch::Tensor& a, const torch::Tensor& b) { return (a * b).sum(-1); }
torch::Tensor row_norm(const torch::Tensor& a) { return row_dot(a, a).sqrt(); }

// Angle at b between a - b and c - b, by atan2 (accurate near 0 and pi).
torch::Tensor bond_angle(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c) {
  auto u = a - b, v = c - b;
  return torch::atan2(row_norm(torch::cross(u, v, -1)), row_dot(u, v));
}

}  // namespace

torch::Tensor dihedral_angle(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c,
                             const torch::Tensor& d) {
  auto b1 = b - a, b2 = c - b, b3 = d - c;
  auto n1 = torch::cross(b1, b2, -1), n2 = torch::cross(b2, b3, -1);
  return torch::atan2(row_norm(b2) * row_dot(b1, n2), row_dot(n1, n2));
}

ZMatrix::ZMatrix(int64_t num_particles, int64_t anchor, std::array<int64_t, 2> frame_particles,
                 const std::vector<std::array<int64_t, 2>>& bonds) {
  const int64_t N = num_particles;
  check(N >= 3, "internal coordinates need at least 3 atoms");
  check(anchor >= 0 && anchor < N, fmt::format("anchor {} is not an atom index in 0..{}", anchor, N - 1));
  check(!bonds.empty(),
        "the internal prior family needs a bond graph, and this system has no bonds (use family = "
        "\"independent\" or \"gaussian\" for clusters)");
  std::vector<std::vector<int64_t>> neighbours(static_cast<size_t>(N));
  for (const auto& b : bonds) {
    check(b[0] >= 0 && b[0] < N && b[1] >= 0 && b[1] < N && b[0] != b[1],
          fmt::format("bond ({}, {}) does not join two different atoms in 0..{}", b[0], b[1], N - 1));
    neighbours[static_cast<size_t>(b[0])].push_back(b[1]);
    neighbours[static_cast<size_t>(b[1])].push_back(b[0]);
  }
  auto bonded = [&](int64_t i, int64_t j) {
    for (int64_t k : neighbours[static_cast<size_t>(i)])
      if (k == j) return true;
    return false;
  };
  const auto [f1, f2] = frame_particles;
  check(f1 != f2 && bonded(anchor, f1) && bonded(anchor, f2),
        fmt::format("the internal prior family needs two different frame atoms bonded to the anchor {}; "
                    "got {} and {} (set frame = [i, j] to two neighbours of the anchor)",
                    anchor, f1, f2));

  // Breadth-first order from the anchor, frame atoms first; parent = the BFS tree parent.
  std::vector<int64_t> parent(static_cast<size_t>(N), -2), order;
  std::deque<int64_t> queue = {anchor};
  parent[static_cast<size_t>(anchor)] = -1;
  parent[static_cast<size_t>(f1)] = parent[static_cast<size_t>(f2)] = anchor;
  bool root = true;
  while (!queue.empty()) {
    const int64_t a = queue.front();
    queue.pop_front();
    if (root) {
      queue.push_back(f1);
      queue.push_back(f2);
      root = false;
    }
    for (int64_t b : neighbours[static_cast<size_t>(a)]) {
      if (parent[static_cast<size_t>(b)] != -2) continue;  // placed (the frame atoms: already)
      parent[static_cast<size_t>(b)] = a;
      order.push_back(b);
      queue.push_back(b);
    }
  }
  std::vector<int64_t> unreached;
  for (int64_t i = 0; i < N; ++i)
    if (parent[static_cast<size_t>(i)] == -2) unreached.push_back(i);
  check(unreached.empty(),
        fmt::format("the bond graph is disconnected: {} atom(s) (first: {}) cannot be reached from the "
                    "anchor {}; the internal prior family needs one connected molecule",
                    unreached.size(), unreached.empty() ? -1 : unreached.front(), anchor));

  num_free_ = N - 1;
  auto row = [&](int64_t p) { return p == anchor ? num_free_ : (p < anchor ? p : p - 1); };
  f1_ = row(f1);
  f2_ = row(f2);
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> axes;
  for (int64_t i : order) {
    const int64_t p = parent[static_cast<size_t>(i)];
    int64_t g, h;
    bool is_proper;
    if (p == anchor) {
      g = f1, h = f2, is_proper = false;  // i fixed against the frame around the anchor
    } else {
      g = parent[static_cast<size_t>(p)];
      h = g == anchor ? (p == f1 ? f2 : f1) : parent[static_cast<size_t>(g)];
      is_proper = true;
    }
    const int64_t j = static_cast<int64_t>(atom_.size());
    atom_.push_back(row(i)), parent_.push_back(row(p)), grand_.push_back(row(g)), great_.push_back(row(h));
    proper_.push_back(is_proper);
    if (is_proper) axes[{p, g}].push_back(j);
    length_index_.push_back(3 + 3 * j), angle_index_.push_back(4 + 3 * j), torsion_index_.push_back(5 + 3 * j);
  }
  length_index_.insert(length_index_.begin(), {0, 1});
  angle_index_.insert(angle_index_.begin(), 2);
  for (const auto& [axis, group] : axes) {
    bool moves_a_branch = false;
    for (int64_t j : group)
      moves_a_branch = moves_a_branch || neighbours[static_cast<size_t>(order[static_cast<size_t>(j)])].size() >= 2;
    if (moves_a_branch) rotatable_.push_back(group);
  }
}

torch::Tensor ZMatrix::coordinates(const torch::Tensor& y) const {
  check(y.dim() == 3 && y.size(1) == num_free_ && y.size(2) == 3,
        fmt::format("internal coordinates need y of shape (B, {}, 3)", num_free_));
  auto y64 = y.to(torch::kFloat64);
  const auto device = y.device();
  auto yy = torch::cat({y64, torch::zeros({y.size(0), 1, 3}, y64.options())}, 1);
  auto at = [&](const std::vector<int64_t>& rows) { return yy.index_select(1, index_tensor(rows, device)); };
  auto y1 = y64.select(1, f1_), y2 = y64.select(1, f2_);
  auto head = torch::stack({row_norm(y1), row_norm(y2), bond_angle(y1, torch::zeros_like(y1), y2)}, 1);
  if (atom_.empty()) return head;
  auto xi = at(atom_), xp = at(parent_), xg = at(grand_), xh = at(great_);  // (B, T, 3)
  auto r = row_norm(xi - xp);
  auto theta = bond_angle(xi, xp, xg);
  auto phi = dihedral_angle(xi, xp, xg, xh);
  return torch::cat({head, torch::stack({r, theta, phi}, -1).flatten(1)}, 1);
}

torch::Tensor ZMatrix::positions(const torch::Tensor& c) const {
  check(c.dim() == 2 && c.size(1) == dim(), fmt::format("internal coordinates must have shape (B, {})", dim()));
  const int64_t B = c.size(0);
  auto zero = torch::zeros({B}, c.options());
  std::vector<torch::Tensor> rows(static_cast<size_t>(num_free_ + 1));
  rows[static_cast<size_t>(num_free_)] = torch::zeros({B, 3}, c.options());
  auto r1 = c.select(1, 0), r2 = c.select(1, 1), theta2 = c.select(1, 2);
  rows[static_cast<size_t>(f1_)] = torch::stack({r1, zero, zero}, 1);
  rows[static_cast<size_t>(f2_)] = torch::stack({r2 * theta2.cos(), r2 * theta2.sin(), zero}, 1);
  // NeRF: i from h, g, p with |i - p| = r, angle(i, p, g) = theta, dihedral(h, g, p, i) = phi.
  for (size_t j = 0; j < atom_.size(); ++j) {
    const auto& a = rows[static_cast<size_t>(great_[j])];
    const auto& b = rows[static_cast<size_t>(grand_[j])];
    const auto& p = rows[static_cast<size_t>(parent_[j])];
    auto r = c.select(1, 3 + 3 * int64_t(j)).unsqueeze(1);
    auto theta = c.select(1, 4 + 3 * int64_t(j)).unsqueeze(1);
    auto phi = c.select(1, 5 + 3 * int64_t(j)).unsqueeze(1);
    auto bc = p - b;
    bc = bc / row_norm(bc).unsqueeze(1);
    auto n = torch::cross(b - a, bc, -1);
    n = n / row_norm(n).unsqueeze(1);
    auto m = torch::cross(n, bc, -1);
    rows[static_cast<size_t>(atom_[j])] =
        p + r * (-theta.cos() * bc + theta.sin() * (phi.cos() * m + phi.sin() * n));
  }
  rows.pop_back();
  return torch::stack(rows, 1);
}

torch::Tensor ZMatrix::log_volume(const torch::Tensor& c) const {
  const auto device = c.device();
  return std::log(8 * kPi * kPi) + 2 * c.index_select(1, index_tensor(length_index_, device)).log().sum(1) +
         c.index_select(1, index_tensor(angle_index_, device)).sin().log().sum(1);
}

torch::Tensor random_rotamers(const ZMatrix& zmatrix, const torch::Tensor& base, int64_t count) {
  check(base.dim() == 2 && base.size(0) == zmatrix.num_free() && base.size(1) == 3,
        fmt::format("random rotamers need one structure of shape ({}, 3)", zmatrix.num_free()));
  auto c = zmatrix.coordinates(base.unsqueeze(0)).expand({count, -1}).clone();
  for (const auto& group : zmatrix.rotatable_groups()) {
    std::vector<int64_t> columns;
    for (int64_t j : group) columns.push_back(zmatrix.torsion_index()[static_cast<size_t>(j)]);
    auto angle = kPi * (2 * torch::rand({count, 1}, c.options()) - 1);
    c.index_add_(1, index_tensor(columns, c.device()), angle.expand({count, int64_t(columns.size())}));
  }
  return zmatrix.positions(c);
}

torch::Tensor discover_molecule_minima(const AnchoredEnergy& energy, const ZMatrix& zmatrix, int64_t count,
                                       int64_t soft_iterations, int64_t iterations) {
  check(count >= 1, "basin discovery needs at least one start");
  auto reference = energy.energy().reference_configuration();
  torch::Tensor base;
  if (reference.defined()) {
    base = energy.to_anchored(reference.to(torch::kFloat64));
  } else {
    // A compact random start, relaxed: a structure with the right bonded geometry.
    const int64_t N = energy.energy().num_particles();
    auto x = energy.energy().length_scale() * std::cbrt(static_cast<double>(N)) *
             (torch::rand({1, N, 3}, torch::kFloat64) - 0.5);
    base = minimize_energy(energy, energy.to_anchored(x), soft_iterations, /*t=*/0.0).y;
  }
  base = minimize_energy(energy, base, iterations, /*t=*/1.0).y;
  auto starts = random_rotamers(zmatrix, base.select(0, 0), count);
  auto soft = minimize_energy(energy, starts, soft_iterations, /*t=*/0.0);
  auto minimised = minimize_energy(energy, soft.y, iterations, /*t=*/1.0);
  return torch::cat({base, minimised.y}, 0);
}

}  // namespace mintjulep
