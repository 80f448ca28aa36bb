// Backbone analysis: dihedrals against hand-built geometry, chirality, histograms, basins,
// the Jensen-Shannon divergence and the PNG writer.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/ramachandran.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

namespace mintjulep {
namespace {

// Four points with a prescribed dihedral: b2 along z, the first bond in the xz plane, the
// last one rotated by phi about z.
torch::Tensor four_points(double phi) {
  return torch::tensor({1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5, std::cos(phi), std::sin(phi), 2.5},
                       torch::kFloat64)
      .reshape({1, 4, 3});
}

TEST(Dihedral, MatchesConstructedAnglesWithIupacSign) {
  for (double phi : {-2.5, -1.0, -0.1, 0.0, 0.7, 1.9, 3.0}) {
    EXPECT_NEAR(dihedral(four_points(phi), 0, 1, 2, 3).item<double>(), phi, 1e-12) << phi;
  }
}

std::shared_ptr<MolecularEnergy> ala2() {
  return std::dynamic_pointer_cast<MolecularEnergy>(make_system("ala2"));
}

torch::Tensor pdb_positions(const MolecularEnergy& m) {
  return m.reference_configuration();
}

TEST(Backbone, AlanineDipeptideAtomsAndChirality) {
  auto m = ala2();
  const auto a = find_backbone(m->topology());
  EXPECT_EQ(a.c_prev, 4);
  EXPECT_EQ(a.n, 6);
  EXPECT_EQ(a.ca, 8);
  EXPECT_EQ(a.cb, 10);
  EXPECT_EQ(a.c, 14);
  EXPECT_EQ(a.n_next, 16);
  auto x = pdb_positions(*m);
  // The PDB structure is L-alanine (CO, R, N clockwise seen from HA) with a planar backbone.
  EXPECT_EQ(chirality(x, a).item<double>(), 1.0);
  EXPECT_NEAR(std::abs(dihedral(x, a.c_prev, a.n, a.ca, a.c).item<double>()), M_PI, 1e-2);
  // The mirror image is D, has the same energy and opposite dihedrals; mirror_to_l undoes it.
  auto mirrored = -x;
  EXPECT_EQ(chirality(mirrored, a).item<double>(), -1.0);
  EXPECT_NEAR(m->energy(mirrored).item<double>(), m->energy(x).item<double>(), 1e-9);
  auto both = torch::cat({x, mirrored});
  auto fixed = mirror_to_l(both, a);
  EXPECT_TRUE(chirality(fixed, a).eq(1).all().item<bool>());
  auto phi_mirrored = dihedral(mirrored, a.c_prev, a.n, a.ca, a.c);
  auto psi_x = dihedral(x, a.n, a.ca, a.c, a.n_next);
  auto psi_mirrored = dihedral(mirrored, a.n, a.ca, a.c, a.n_next);
  EXPECT_NEAR(std::sin(psi_mirrored.item<double>()), -std::sin(psi_x.item<double>()), 1e-12);
  (void)phi_mirrored;
}

TEST(Ramachandran, HistogramIsWeightedAndNormalised) {
  auto phi = torch::tensor({-3.0, -3.0, 0.1, 3.1}, torch::kFloat64);
  auto psi = torch::tensor({-3.0, -3.0, 0.1, -3.1}, torch::kFloat64);
  auto w = torch::tensor({1.0, 1.0, 2.0, 4.0}, torch::kFloat64);
  auto h = ramachandran_histogram(phi, psi, w, 4);
  EXPECT_NEAR(h.sum().item<double>(), 1.0, 1e-15);
  EXPECT_NEAR(h[0][0].item<double>(), 0.25, 1e-15);
  EXPECT_NEAR(h[2][2].item<double>(), 0.25, 1e-15);
  EXPECT_NEAR(h[3][0].item<double>(), 0.5, 1e-15);
  EXPECT_THROW(ramachandran_histogram(phi, psi, torch::tensor({1.0, -1.0, 1.0, 1.0}, torch::kFloat64)), Error);
}

TEST(Ramachandran, BasinFractions) {
  const double d = M_PI / 180.0;
  auto phi = torch::tensor({-80 * d, -70 * d, -80 * d, 60 * d, -150 * d}, torch::kFloat64);
  auto psi = torch::tensor({70 * d, -40 * d, 160 * d, 40 * d, -170 * d}, torch::kFloat64);
  auto w = torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0}, torch::kFloat64);
  auto f = basin_fractions(phi, psi, w);
  EXPECT_NEAR(f.alpha_r, 2.0 / 15, 1e-15);
  EXPECT_NEAR(f.alpha_l_c7ax, 4.0 / 15, 1e-15);
  EXPECT_NEAR(f.c7eq_c5, 9.0 / 15, 1e-15);
}

TEST(Ramachandran, JensenShannonLimits) {
  auto p = torch::tensor({0.5, 0.5, 0.0, 0.0}, torch::kFloat64);
  auto q = torch::tensor({0.0, 0.0, 1.0, 3.0}, torch::kFloat64);
  EXPECT_NEAR(jensen_shannon(p, p), 0.0, 1e-15);
  EXPECT_NEAR(jensen_shannon(p, q), std::log(2.0), 1e-15);  // disjoint supports
  // Closed form for two-point distributions p = (1, 0), q = (1/2, 1/2).
  auto a = torch::tensor({1.0, 0.0}, torch::kFloat64), b = torch::tensor({1.0, 1.0}, torch::kFloat64);
  const double expected = 0.5 * std::log(1.0 / 0.75) + 0.5 * (0.5 * std::log(0.5 / 0.75) + 0.5 * std::log(0.5 / 0.25));
  EXPECT_NEAR(jensen_shannon(a, b), expected, 1e-15);
  EXPECT_NEAR(jensen_shannon(b, a), expected, 1e-15);
}

TEST(Ramachandran, PngFileIsWritten) {
  const std::string path = ::testing::TempDir() + "rama.png";
  auto h = torch::rand({30, 30}, torch::kFloat64);
  write_ramachandran_png(path, h, 4);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  // Width and height (big-endian) in the IHDR chunk: 120 x 120.
  EXPECT_EQ(static_cast<unsigned char>(bytes[19]), 120);
  EXPECT_EQ(static_cast<unsigned char>(bytes[23]), 120);
  EXPECT_THROW(write_ramachandran_png("/nonexistent/dir/x.png", h), Error);
}

}  // namespace
}  // namespace mintjulep
