// Energies of the built-in systems: hand-computed values, finite-difference forces,
// symmetries, the path endpoint and the soft-core path.
#include <mintjulep/energy.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/pair_energies.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "test_helpers.hpp"

namespace mintjulep {
namespace {

using testing::lattice_configurations;
using testing::max_relative_error;
using testing::random_orthogonal;

torch::Tensor tensor3(std::vector<double> values, int64_t n_particles, int64_t dim) {
  return torch::tensor(values, torch::kFloat64).reshape({1, n_particles, dim});
}

double energy_of(const std::string& system, const torch::Tensor& x, double t = 1.0) {
  return make_system(system)->energy(x, t).item<double>();
}

// --- hand-computed values ---------------------------------------------------------------

TEST(DoubleWell, SquareMatchesHandComputedValue) {
  // Side s: 4 edges at d = s and 2 diagonals at d = s sqrt(2);
  // V = sum -4 (d - 4)^2 + 0.9 (d - 4)^4, evaluated by hand.
  EXPECT_NEAR(energy_of("dw4", tensor3({0, 0, 4, 0, 4, 4, 0, 4}, 4, 2)), -8.396642530754047, 1e-12);
  EXPECT_NEAR(energy_of("dw4", tensor3({0, 0, 3, 0, 3, 3, 0, 3}, 4, 2)), -12.864756851569767, 1e-12);
  // Each pair at d = d0 contributes 0, so the equilateral triangle of side 4 has V = 0.
  EXPECT_NEAR(energy_of("dw:3:2", tensor3({0, 0, 4, 0, 2, std::sqrt(12.0)}, 3, 2)), 0.0, 1e-12);
}

TEST(LennardJones, DimerAtMinimumGivesMinusEpsilon) {
  EXPECT_NEAR(energy_of("lj:2:3", tensor3({0, 0, 0, 0, 0, 1}, 2, 3)), -1.0, 1e-15);
  EXPECT_NEAR(energy_of("lj:2:2", tensor3({0.5, 0.5, 0.5, 1.5}, 2, 2)), -1.0, 1e-15);
  // r = 2^(-1/6) rm = sigma: the pair energy crosses zero.
  EXPECT_NEAR(energy_of("lj:2:3", tensor3({0, 0, 0, std::pow(2.0, -1.0 / 6.0), 0, 0}, 2, 3)), 0.0,
              1e-13);
}

torch::Tensor icosahedron(double radius) {
  const double phi = (1 + std::sqrt(5.0)) / 2;
  std::vector<double> v = {0, 0, 0};
  for (double a : {-1.0, 1.0})
    for (double b : {-phi, phi}) {
      v.insert(v.end(), {0, a, b});
      v.insert(v.end(), {a, b, 0});
      v.insert(v.end(), {b, 0, a});
    }
  return tensor3(v, 13, 3) * (radius / std::sqrt(1 + phi * phi));
}

TEST(LennardJones, Lj13IcosahedronReachesKnownGlobalMinimum) {
  // Golden-section search over the icosahedron's radius; the Ih symmetry fixes every other
  // degree of freedom, so the optimum is the LJ13 global minimum -44.326801 (Wales & Doye).
  auto e = [](double r) { return energy_of("lj:13:3", icosahedron(r)); };
  double lo = 0.8, hi = 1.2;
  const double g = (std::sqrt(5.0) - 1) / 2;
  for (int i = 0; i < 200; ++i) {
    const double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
    (e(a) < e(b) ? hi : lo) = (e(a) < e(b) ? b : a);
  }
  EXPECT_NEAR(e(0.5 * (lo + hi)), -44.326801, 5e-7);
}

TEST(LennardJones, ConventionsDifferByPairWeightAndHarmonicTerm) {
  auto x = lattice_configurations(5, 13, 3, 1.1, 0.1, 7);
  auto pair = make_system("lj:13:3")->energy(x);
  auto harmonic = 0.5 * (x - x.mean(1, true)).pow(2).sum({1, 2});
  EXPECT_LT(max_relative_error(make_system("lj13-half")->energy(x), pair + harmonic), 1e-13);
  EXPECT_LT(max_relative_error(make_system("lj13")->energy(x), 2 * pair + harmonic), 1e-13);
  auto x55 = lattice_configurations(2, 55, 3, 1.1, 0.1, 8);
  auto pair55 = make_system("lj:55:3")->energy(x55);
  auto harmonic55 = 0.5 * (x55 - x55.mean(1, true)).pow(2).sum({1, 2});
  EXPECT_LT(max_relative_error(make_system("lj55")->energy(x55), 2 * pair55 + harmonic55), 1e-13);
  EXPECT_LT(max_relative_error(make_system("lj55-half")->energy(x55), pair55 + harmonic55), 1e-13);
}

// --- properties every system must have, parametrized over systems ---------------------

struct SystemCase {
  std::string name;
  double spacing;  // lattice spacing of test configurations
  double jitter;
};
void PrintTo(const SystemCase& c, std::ostream* os) { *os << c.name; }

class EverySystem : public ::testing::TestWithParam<SystemCase> {
 protected:
  std::shared_ptr<Energy> system() const { return make_system(GetParam().name); }
  torch::Tensor configurations(int64_t batch, uint64_t seed,
                               torch::ScalarType dtype = torch::kFloat64) const {
    auto s = system();
    return lattice_configurations(batch, s->num_particles(), s->dim(), GetParam().spacing,
                                  GetParam().jitter, seed, dtype);
  }
};

TEST_P(EverySystem, GradientMatchesCentralFiniteDifferences) {
  AnchoredEnergy energy(system(), system()->default_anchor());
  for (double t : {0.0, 0.37, 1.0}) {
    auto y = energy.to_anchored(configurations(1, 11));
    auto grad = energy.value_and_grad(y, t).grad.flatten();
    const int64_t d = grad.numel();
    const double h = 1e-5;
    // All 2d displaced configurations in one batch.
    auto eye = torch::eye(d, torch::kFloat64).reshape({d, y.size(1), y.size(2)});
    auto plus = energy.value(y + h * eye, t), minus = energy.value(y - h * eye, t);
    auto fd = (plus - minus) / (2 * h);
    EXPECT_LT((fd - grad).norm().item<double>() / grad.norm().item<double>(), 1e-6) << "t = " << t;
  }
}

TEST_P(EverySystem, FullForcesAreMinusGradientInFullCoordinates) {
  auto s = system();
  AnchoredEnergy energy(s, s->num_particles() - 1);
  auto x = configurations(3, 12).requires_grad_(true);
  auto reference = -torch::autograd::grad({s->energy(x, 0.6).sum()}, {x})[0];
  auto forces = energy.full_forces(energy.value_and_grad(energy.to_anchored(x.detach()), 0.6).grad);
  EXPECT_LT(max_relative_error(forces, reference), 1e-12);
}

// Without a graph, value_and_grad takes the closed-form pair loop on CPU; with y requiring grad
// it goes through autograd on the tensor expression. Both must agree to rounding.
TEST_P(EverySystem, ClosedFormGradientMatchesAutograd) {
  auto s = system();
  torch::Tensor v, g;
  ASSERT_TRUE(s->closed_form_energy_and_gradient(configurations(2, 16), 1.0, v, g)) << "no closed form on CPU";
  for (int64_t anchor : {int64_t{0}, s->num_particles() - 1}) {
    AnchoredEnergy energy(s, anchor);
    auto y = energy.to_anchored(configurations(37, 17));
    for (double t : {0.0, 0.37, 1.0}) {
      auto fast = energy.value_and_grad(y, t);
      auto reference = energy.value_and_grad(y.clone().requires_grad_(true), t);
      EXPECT_LT(max_relative_error(fast.value, reference.value.detach()), 1e-12) << "t = " << t;
      EXPECT_LT(max_relative_error(fast.grad, reference.grad.detach()), 1e-11) << "t = " << t;
    }
  }
}

// AnchoredEnergy::value also takes the closed-form pass when y carries no gradient; it must equal
// the system's tensor expression, and stay differentiable when y requires grad.
TEST_P(EverySystem, AnchoredValueEqualsTheTensorExpressionWithAndWithoutGrad) {
  auto s = system();
  AnchoredEnergy energy(s, 1);
  auto y = energy.to_anchored(configurations(29, 18));
  for (double t : {0.0, 0.37, 1.0}) {
    auto reference = s->energy(energy.to_full(y), t);
    EXPECT_LT(max_relative_error(energy.value(y, t), reference), 1e-12) << "t = " << t;
    auto y_grad = y.clone().requires_grad_(true);
    auto v = energy.value(y_grad, t);
    ASSERT_TRUE(v.requires_grad()) << "t = " << t;
    EXPECT_LT(max_relative_error(v.detach(), reference), 1e-12) << "t = " << t;
  }
}

TEST_P(EverySystem, InvariantUnderRotationsReflectionsTranslationsPermutations) {
  auto s = system();
  auto x = configurations(8, 13);
  for (double t : {0.2, 1.0}) {
    auto reference = s->energy(x, t);
    for (bool reflect : {false, true}) {
      auto q = random_orthogonal(s->dim(), reflect, reflect ? 21 : 22);
      EXPECT_LT(max_relative_error(s->energy(x.matmul(q), t), reference), 1e-12);
    }
    auto shift = 3.0 * torch::randn({8, 1, s->dim()}, torch::kFloat64);
    EXPECT_LT(max_relative_error(s->energy(x + shift, t), reference), 1e-12);
    auto perm = torch::randperm(s->num_particles(), torch::kLong);
    EXPECT_LT(max_relative_error(s->energy(x.index_select(1, perm), t), reference), 1e-12);
  }
}

TEST_P(EverySystem, AnchorChoiceDoesNotChangeTheEnergy) {
  auto s = system();
  auto x = configurations(4, 14);
  auto reference = s->energy(x, 0.5);
  for (int64_t anchor : {int64_t{0}, s->num_particles() / 2, s->num_particles() - 1}) {
    AnchoredEnergy energy(s, anchor);
    auto y = energy.to_anchored(x);
    EXPECT_LT(max_relative_error(energy.value(y, 0.5), reference), 1e-12);
    EXPECT_TRUE(torch::allclose(energy.to_full(y), x - x.narrow(1, anchor, 1), 0, 1e-15));
  }
}

TEST_P(EverySystem, Float32AgreesWithFloat64) {
  AnchoredEnergy energy(system(), 0);
  auto y64 = energy.to_anchored(configurations(16, 15));
  auto y32 = y64.to(torch::kFloat32);
  for (double t : {0.0, 0.5, 1.0}) {
    auto r64 = energy.value_and_grad(y64, t), r32 = energy.value_and_grad(y32, t);
    EXPECT_EQ(r32.value.scalar_type(), torch::kFloat32);
    EXPECT_LT(max_relative_error(r32.value.to(torch::kFloat64), r64.value), 1e-5);
    EXPECT_LT(max_relative_error(r32.grad.to(torch::kFloat64), r64.grad), 1e-4);
  }
}

TEST_P(EverySystem, RejectsWrongShapes) {
  auto s = system();
  EXPECT_THROW(s->energy(torch::zeros({2, s->num_particles() + 1, s->dim()}, torch::kFloat64)), Error);
  EXPECT_THROW(s->energy(torch::zeros({s->num_particles(), s->dim()}, torch::kFloat64)), Error);
  EXPECT_THROW(s->energy(torch::zeros({1, s->num_particles(), s->dim()}, torch::kLong)), Error);
  EXPECT_THROW(s->energy(configurations(1, 1), 1.5), Error);
}

INSTANTIATE_TEST_SUITE_P(BuiltIn, EverySystem,
                         ::testing::Values(SystemCase{"dw4", 4.0, 0.5},
                                           SystemCase{"dw:5:3", 4.0, 0.5},
                                           SystemCase{"lj13", 1.1, 0.08},
                                           SystemCase{"lj13-half", 1.1, 0.08},
                                           SystemCase{"lj55", 1.1, 0.08},
                                           SystemCase{"lj55-half", 1.1, 0.08},
                                           SystemCase{"lj:7:2", 1.1, 0.08}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// --- the annealing path -------------------------------------------------------------------

// Independent reference: plain loops over pairs, eps [(rm/r)^12 - 2 (rm/r)^6] and the
// double-well polynomial, no tensor code.
double reference_energy(const std::string& kind, const torch::Tensor& x_one) {
  auto x = x_one.contiguous();
  const auto a = x.accessor<double, 2>();
  double v = 0;
  for (int64_t i = 0; i < x.size(0); ++i)
    for (int64_t j = i + 1; j < x.size(0); ++j) {
      double r2 = 0;
      for (int64_t k = 0; k < x.size(1); ++k) r2 += (a[i][k] - a[j][k]) * (a[i][k] - a[j][k]);
      const double r = std::sqrt(r2);
      if (kind == "lj") {
        const double s6 = std::pow(1.0 / r, 6);
        v += s6 * s6 - 2 * s6;
      } else {
        v += -4 * (r - 4) * (r - 4) + 0.9 * std::pow(r - 4, 4);
      }
    }
  return v;
}

TEST(AnnealingPath, EndpointIsTheTargetEnergy) {
  for (const auto& [system, kind, spacing] :
       {std::tuple{"lj:13:3", "lj", 1.1}, std::tuple{"lj:6:2", "lj", 1.1}, std::tuple{"dw4", "dw", 4.0}}) {
    auto s = make_system(system);
    auto x = lattice_configurations(4, s->num_particles(), s->dim(), spacing, 0.1, 31);
    auto v = s->energy(x, 1.0);
    for (int64_t b = 0; b < 4; ++b)
      EXPECT_NEAR(v[b].item<double>(), reference_energy(kind, x[b]),
                  1e-13 * std::abs(reference_energy(kind, x[b])))
          << system;
  }
}

TEST(AnnealingPath, SoftCoreMinimumStaysAtRm) {
  auto dimer = [](double r) { return tensor3({0, 0, 0, r, 0, 0}, 2, 3); };
  AnchoredEnergy energy(make_system("lj:2:3"), 0);
  for (double t : {0.0, 0.5, 1.0}) {
    auto at_rm = energy.value_and_grad(energy.to_anchored(dimer(1.0)), t);
    EXPECT_NEAR(at_rm.grad.abs().max().item<double>(), 0.0, 1e-12) << "t = " << t;
    // The well depth is eps (2 - t)^-12.
    EXPECT_NEAR(at_rm.value.item<double>(), -std::pow(2.0 - t, -12.0), 1e-15);
    for (double dr : {-1e-3, 1e-3, -0.1, 0.3})
      EXPECT_GT(energy.value(energy.to_anchored(dimer(1.0 + dr)), t).item<double>(),
                at_rm.value.item<double>());
  }
  // The core softens away from t = 1: at r = 0 the energy is finite for t < 1, and the
  // closed-form gradient there is zero (the pair has no direction) rather than NaN.
  EXPECT_TRUE(std::isfinite(energy_of("lj:2:3", dimer(0.0), 0.5)));
  auto at_zero = energy.value_and_grad(energy.to_anchored(dimer(0.0)), 0.5);
  EXPECT_TRUE(std::isfinite(at_zero.value.item<double>()));
  EXPECT_EQ(at_zero.grad.abs().max().item<double>(), 0.0);
}

TEST(AnnealingPath, DoubleWellHasNoTimeDependence) {
  auto s = make_system("dw4");
  auto x = lattice_configurations(3, 4, 2, 4.0, 0.5, 41);
  EXPECT_TRUE(torch::equal(s->energy(x, 0.0), s->energy(x, 1.0)));
}

// --- construction errors ------------------------------------------------------------------

TEST(Systems, UnknownNamesAreClearErrors) {
  for (const char* bad : {"lj14", "dw:1:2", "lj:5:4", "", "lj:x:3"}) {
    try {
      make_system(bad);
      ADD_FAILURE() << "no error for '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
  EXPECT_EQ(make_system("lj:9:2")->num_particles(), 9);
  EXPECT_EQ(make_system("dw:6:3")->dim(), 3);
  EXPECT_THROW(AnchoredEnergy(make_system("dw4"), 4), Error);
}

}  // namespace
}  // namespace mintjulep
