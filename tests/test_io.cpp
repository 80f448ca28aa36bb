// Reading and writing .npy, .xyz, PDB and DCD files.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <functional>

namespace mintjulep {
namespace {

namespace fs = std::filesystem;

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mintjulep_io_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    remove_tree(dir_.string());
    fs::create_directories(dir_);
  }
  void TearDown() override { remove_tree(dir_.string()); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_text(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
  }
  fs::path dir_;
};

using Npy = TempDir;
using Xyz = TempDir;
using Trajectory = TempDir;

TEST_F(Npy, RoundTripKeepsDtypeShapeAndValues) {
  torch::manual_seed(1);
  for (auto dtype : {torch::kFloat32, torch::kFloat64, torch::kInt64, torch::kInt32}) {
    for (std::vector<int64_t> shape : {std::vector<int64_t>{7}, {3, 4, 2}, {0, 5}, {2, 1, 1, 3}}) {
      auto t = (100 * torch::randn(shape, torch::kFloat64)).to(dtype);
      write_npy(path("a.npy"), t);
      auto back = read_npy(path("a.npy"));
      EXPECT_EQ(back.scalar_type(), dtype);
      EXPECT_EQ(back.sizes(), t.sizes());
      EXPECT_TRUE(torch::equal(back, t));
    }
  }
  // No temporary files are left behind by the atomic write.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(Npy, HeaderIsAlignedAsNumpyWritesIt) {
  write_npy(path("b.npy"), torch::zeros({2, 3}, torch::kFloat64));
  std::ifstream in(path("b.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_NE(bytes.find("'shape': (2, 3)"), std::string::npos);
  EXPECT_EQ(bytes.size(), 10 + header_len + 6 * 8);
}

// A file as numpy writes it, built byte by byte: a Fortran-ordered float64 (2, 3) array
// [[1, 2, 3], [4, 5, 6]] is stored column by column.
TEST_F(Npy, ReadsHandWrittenFortranOrderFile) {
  std::string header = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size());
  bytes += '\0';
  bytes += header;
  for (double v : {1.0, 4.0, 2.0, 5.0, 3.0, 6.0}) bytes.append(reinterpret_cast<const char*>(&v), 8);
  write_text("f.npy", bytes);
  auto t = read_npy(path("f.npy"));
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, torch::kFloat64).reshape({2, 3})));
}

TEST_F(Npy, MalformedFilesAreClearErrors) {
  EXPECT_THROW(read_npy(path("missing.npy")), Error);
  write_text("text.npy", "hello, not numpy");
  EXPECT_THROW(read_npy(path("text.npy")), Error);
  write_npy(path("full.npy"), torch::ones({10, 3}, torch::kFloat64));
  std::ifstream in(path("full.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_text("truncated.npy", bytes.substr(0, bytes.size() - 9));
  EXPECT_THROW(read_npy(path("truncated.npy")), Error);
  std::string big_endian = bytes;
  big_endian.replace(big_endian.find("<f8"), 3, ">f8");
  write_text("big.npy", big_endian);
  EXPECT_THROW(read_npy(path("big.npy")), Error);
  EXPECT_THROW(write_npy(path("no/such/folder/x.npy"), torch::ones({2})), Error);
}

// A .npy file with the given header dict and payload, padded as numpy writes it.
std::string npy_file(std::string header, const std::string& payload) {
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  return bytes + header + payload;
}

std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

bool is_one_printable_line(const std::string& message) {
  for (char c : message)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return false;
  return !message.empty();
}

// Inputs from the fuzz harnesses (fuzz/): declared sizes are checked against the file before
// anything is allocated, and a shape must hold non-negative integers.
TEST_F(Npy, DeclaredShapesAreCheckedBeforeAllocating) {
  const std::string payload(64, '\0');  // 8 float64 values
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"(1073741824, 1073741824)", "truncated"},           // 2^60 values: 8 EiB allocation
      {"(1099511627776, 1099511627776, 2)", "truncated"},  // 2^81 values: int64 overflow
      {"(100000000000000000, 1000)", "truncated"},         // 1e20 values: int64 overflow
      {"(99999999999999999999, 2)", "too large"},          // std::stoll out_of_range
      {"(-4, 2)", "non-negative integers"},                // read as (4, 2)
      {"(4, 2, 1e3)", "non-negative integers"},
      {"(,)", "non-negative integers"},
      {"[4, 2]", "'shape'"},
  };
  for (const auto& [shape, needle] : cases) {
    write_text("s.npy", npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }", payload));
    const std::string message = error_message([&] { read_npy(path("s.npy")); });
    EXPECT_NE(message.find(needle), std::string::npos) << shape << ": " << message;
  }
  write_text("ok.npy", npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2,), }", payload));
  EXPECT_EQ(read_npy(path("ok.npy")).sizes(), (std::vector<int64_t>{4, 2}));
  write_text("scalar.npy", npy_file("{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (), }", payload));
  EXPECT_EQ(read_npy(path("scalar.npy")).dim(), 0);
}

TEST_F(Npy, QuotedHeaderTextStaysOnOneLine) {
  write_text("d.npy", npy_file("{'descr': '<f8\n\x01', 'fortran_order': False, 'shape': (1,), }",
                               std::string(8, '\0')));
  const std::string message = error_message([&] { read_npy(path("d.npy")); });
  EXPECT_NE(message.find("unsupported .npy dtype '<f8\\n\\x01'"), std::string::npos) << message;
  EXPECT_TRUE(is_one_printable_line(message)) << message;
}

TEST_F(Npy, NpzOfTheSameArraysHasTheSameBytes) {
  // Fixed member time stamps: checksums of written results are reproducible.
  const std::vector<std::pair<std::string, torch::Tensor>> arrays = {
      {"x", torch::arange(12, torch::kFloat64).reshape({3, 4})}, {"n", torch::tensor({7}, torch::kLong)}};
  auto bytes = [&](const std::string& name) {
    write_npz(path(name), arrays);
    std::ifstream in(path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string first = bytes("a.npz");
  // The first member's local header: DOS time 00:00:00 (bytes 10-11), date 1980-01-01 (12-13).
  ASSERT_GT(first.size(), 14u);
  EXPECT_EQ(first.substr(10, 4), std::string("\x00\x00\x21\x00", 4));
  EXPECT_EQ(bytes("b.npz"), first);
  auto back = read_npz(path("b.npz"));
  EXPECT_TRUE(torch::equal(back["x"], arrays[0].second));
  EXPECT_EQ(back["n"].item<int64_t>(), 7);
}

TEST_F(Xyz, ReadsMultipleFramesAndWritesThemBack) {
  write_text("two.xyz",
             "2\nframe one\nAr 0 0 0\nAr 1.5 0 0\n\n2\nframe two\nAr 0 0 0\nAr 0 2.5 -1e-3\n");
  auto traj = read_xyz(path("two.xyz"));
  ASSERT_EQ(traj.positions.sizes(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(traj.elements, (std::vector<std::string>{"Ar", "Ar"}));
  EXPECT_DOUBLE_EQ(traj.positions[1][1][2].item<double>(), -1e-3);
  write_xyz(path("back.xyz"), traj.positions, traj.elements, "copy");
  EXPECT_TRUE(torch::allclose(read_xyz(path("back.xyz")).positions, traj.positions, 0, 1e-10));
}

TEST_F(Xyz, MalformedFilesAreClearErrors) {
  write_text("count.xyz", "two\n\nAr 0 0 0\n");
  EXPECT_THROW(read_xyz(path("count.xyz")), Error);
  write_text("short.xyz", "3\ncomment\nAr 0 0 0\nAr 1 0 0\n");
  EXPECT_THROW(read_xyz(path("short.xyz")), Error);
  write_text("mixed.xyz", "1\n\nAr 0 0 0\n2\n\nAr 0 0 0\nAr 1 1 1\n");
  EXPECT_THROW(read_xyz(path("mixed.xyz")), Error);
  write_text("column.xyz", "1\n\nAr 0 zero 0\n");
  EXPECT_THROW(read_xyz(path("column.xyz")), Error);
  write_text("empty.xyz", "\n\n");
  EXPECT_THROW(read_xyz(path("empty.xyz")), Error);
}

TEST_F(Xyz, QuotedLinesStayOnOneLine) {
  write_text("cr.xyz", "1\r\n\r\nAr 0 zero\r 0\r\n");
  std::string message = error_message([&] { read_xyz(path("cr.xyz")); });
  EXPECT_NE(message.find("got 'Ar 0 zero\\r 0\\r'"), std::string::npos) << message;
  EXPECT_TRUE(is_one_printable_line(message)) << message;
  write_text("long.xyz", std::string(10000, '7') + "\n");
  message = error_message([&] { read_xyz(path("long.xyz")); });
  EXPECT_LT(message.size(), 300u) << message;
  EXPECT_TRUE(is_one_printable_line(message)) << message;
}

TEST_F(Xyz, ConfigurationsAreCheckedAgainstTheSystem) {
  auto dw4 = make_system("dw4");
  write_text("flat.xyz", "4\n\nA 0 0 0\nA 4 0 0\nA 4 4 0\nA 0 4 0\n");
  auto x = read_configurations(path("flat.xyz"), *dw4);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1, 4, 2}));
  write_text("tilted.xyz", "4\n\nA 0 0 0\nA 4 0 0\nA 4 4 0.5\nA 0 4 0\n");
  EXPECT_THROW(read_configurations(path("tilted.xyz"), *dw4), Error);
  write_text("nan.xyz", "4\n\nA 0 0 0\nA 4 0 0\nA nan 4 0\nA 0 4 0\n");
  EXPECT_THROW(read_configurations(path("nan.xyz"), *dw4), Error);
  EXPECT_THROW(read_configurations(path("flat.xyz"), *make_system("lj13")), Error);
  write_npy(path("wrong.npy"), torch::zeros({3, 5, 2}, torch::kFloat64));
  EXPECT_THROW(read_configurations(path("wrong.npy"), *dw4), Error);
  write_npy(path("ints.npy"), torch::zeros({3, 4, 2}, torch::kInt64));
  EXPECT_THROW(read_configurations(path("ints.npy"), *dw4), Error);
  write_npy(path("single.npy"), torch::zeros({4, 2}, torch::kFloat32));
  EXPECT_EQ(read_configurations(path("single.npy"), *dw4).sizes(), (std::vector<int64_t>{1, 4, 2}));
  write_npz(path("empty-trajectory.npz"), {{"positions", torch::zeros({0, 3, 4, 2}, torch::kFloat64)}});
  EXPECT_NE(error_message([&] { read_configurations(path("empty-trajectory.npz"), *dw4); }).find("no frames"),
            std::string::npos);
  write_text("x.csv", "1,2\n");
  EXPECT_THROW(read_configurations(path("x.csv"), *dw4), Error);
}

TEST_F(Xyz, MdTrajectoryGivesItsLastFrameOrEveryFrameInOrder) {
  auto dw4 = make_system("dw4");
  // (F, R, N, n) = (3, 2, 4, 2), every configuration distinct.
  auto traj = torch::arange(3 * 2 * 4 * 2, torch::kFloat64).reshape({3, 2, 4, 2});
  write_npz(path("md.npz"), {{"positions", traj}});
  EXPECT_TRUE(torch::equal(read_configurations(path("md.npz"), *dw4), traj[2]));
  const auto all = read_configurations(path("md.npz"), *dw4, /*every_md_frame=*/true);
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{6, 4, 2}));
  for (int64_t f = 0; f < 3; ++f)
    for (int64_t r = 0; r < 2; ++r) EXPECT_TRUE(torch::equal(all[2 * f + r], traj[f][r]));
  // Every frame is checked, not only the last one.
  traj[0][1][2][0] = std::numeric_limits<double>::quiet_NaN();
  write_npz(path("md-nan.npz"), {{"positions", traj}});
  EXPECT_NO_THROW(read_configurations(path("md-nan.npz"), *dw4));
  EXPECT_NE(error_message([&] { read_configurations(path("md-nan.npz"), *dw4, true); }).find("configuration 1 "),
            std::string::npos);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ParticleNames argon(int64_t atoms) {
  ParticleNames names;
  for (int64_t i = 0; i < atoms; ++i) {
    names.atom_names.push_back(i == 0 ? "CA" : "AR");
    names.residue_names.push_back("UNK");
    names.elements.push_back(i == 0 ? "C" : "Ar");
    names.residue_numbers.push_back(i + 1);
  }
  return names;
}

TEST_F(Trajectory, PdbModelsRoundTripToTheThirdDecimal) {
  torch::manual_seed(2);
  auto x = 30 * torch::randn({3, 5, 3}, torch::kFloat64);
  write_pdb_models(path("m.pdb"), x, argon(5), {"sample=0 log_w=-1.5", "", "sample=2 log_w=0.25"});
  auto back = read_pdb_models(path("m.pdb"));
  ASSERT_EQ(back.sizes(), x.sizes());
  EXPECT_LE((back - x).abs().max().item<double>(), 5e-4 + 1e-12);
  const std::string text = read_text(path("m.pdb"));
  EXPECT_NE(text.find("REMARK   1 sample=0 log_w=-1.5\nMODEL        1\n"), std::string::npos);
  EXPECT_NE(text.find("REMARK   1 sample=2 log_w=0.25\nMODEL        3\n"), std::string::npos);
  EXPECT_EQ(text.find("REMARK   1 \n"), std::string::npos);  // no remark for an empty label
  // Fixed columns: a one-letter element's name starts in column 14, the element in 77-78.
  const auto first_atom = text.substr(text.find("ATOM"), 81);
  EXPECT_EQ(first_atom.substr(12, 4), " CA ");
  EXPECT_EQ(first_atom.substr(17, 3), "UNK");
  EXPECT_EQ(first_atom.substr(76, 2), " C");
  const auto second_atom = text.substr(text.find("ATOM      2"), 81);
  EXPECT_EQ(second_atom.substr(12, 4), "AR  ");
  EXPECT_EQ(second_atom.substr(76, 2), "Ar");
  EXPECT_EQ(second_atom.substr(22, 4), "   2");
}

TEST_F(Trajectory, PdbRejectsCoordinatesOutsideItsColumnsAndKeepsTheOldFile) {
  write_text("keep.pdb", "old");
  auto x = torch::zeros({2, 2, 3}, torch::kFloat64);
  x[1][0][1] = 12345.0;
  EXPECT_THROW(write_pdb_models(path("keep.pdb"), x, argon(2), {"", ""}), Error);
  x[1][0][1] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(write_pdb_models(path("keep.pdb"), x, argon(2), {"", ""}), Error);
  EXPECT_EQ(read_text(path("keep.pdb")), "old");
  EXPECT_THROW(write_pdb_models(path("no/such/folder/x.pdb"), torch::zeros({1, 2, 3}), argon(2), {""}), Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(Trajectory, DcdRoundTripIsExactInFloat32) {
  torch::manual_seed(3);
  auto x = 10 * torch::randn({4, 7, 3}, torch::kFloat64);
  write_dcd(path("t.dcd"), x);
  auto back = read_dcd(path("t.dcd"));
  EXPECT_EQ(back.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(back, x.to(torch::kFloat32)));
  // The CHARMM layout: an 84-byte header record starting with CORD, 2 titles, the atom count,
  // then 3 records of 7 floats per frame, every record framed by two 4-byte lengths.
  const std::string bytes = read_text(path("t.dcd"));
  EXPECT_EQ(bytes.substr(4, 4), "CORD");
  EXPECT_EQ(bytes.size(), (84 + 8) + (4 + 160 + 8) + (4 + 8) + 4 * 3 * (7 * 4 + 8));
  // Two dimensions are padded with z = 0.
  write_dcd(path("flat.dcd"), x.narrow(2, 0, 2));
  auto flat = read_dcd(path("flat.dcd"));
  EXPECT_TRUE(torch::equal(flat.narrow(2, 0, 2), x.narrow(2, 0, 2).to(torch::kFloat32)));
  EXPECT_TRUE(flat.select(2, 2).eq(0).all().item<bool>());
  write_text("short.dcd", bytes.substr(0, bytes.size() - 10));
  EXPECT_THROW(read_dcd(path("short.dcd")), Error);
  write_text("text.dcd", "not a dcd file at all");
  EXPECT_THROW(read_dcd(path("text.dcd")), Error);
}

TEST_F(Trajectory, ExtendedXyzCarriesPropertiesPerFrame) {
  torch::manual_seed(4);
  auto x = torch::randn({2, 3, 2}, torch::kFloat64);
  write_extended_xyz(path("e.xyz"), x, {"X", "X", "X"}, {"log_w=-3.5 energy=1.25", "log_w=0.5 energy=-2"});
  auto back = read_xyz(path("e.xyz"));
  ASSERT_EQ(back.positions.sizes(), (std::vector<int64_t>{2, 3, 3}));
  EXPECT_TRUE(torch::allclose(back.positions.narrow(2, 0, 2), x, 0, 1e-10));
  EXPECT_TRUE(back.positions.select(2, 2).eq(0).all().item<bool>());
  const std::string text = read_text(path("e.xyz"));
  EXPECT_NE(text.find("3\nProperties=species:S:1:pos:R:3 pbc=\"F F F\" log_w=0.5 energy=-2\n"), std::string::npos);
}

TEST_F(Trajectory, FormatComesFromTheExtension) {
  EXPECT_EQ(trajectory_format("a/b.npz"), TrajectoryFormat::npz);
  EXPECT_EQ(trajectory_format("s.pdb"), TrajectoryFormat::pdb);
  EXPECT_EQ(trajectory_format("s.dcd"), TrajectoryFormat::dcd);
  EXPECT_EQ(trajectory_format("s.xyz"), TrajectoryFormat::xyz);
  EXPECT_THROW(trajectory_format("s.trr"), Error);
  EXPECT_THROW(trajectory_format("samples"), Error);
}

// A molecule is written in Angstrom with its topology's names and read back in nm.
TEST_F(Trajectory, MoleculeFilesUseTheTopologyAndAngstrom) {
  auto ala2 = make_system("ala2");
  EXPECT_EQ(angstrom_per_length_unit(*ala2), 10.0);
  const auto names = particle_names(*ala2);
  ASSERT_EQ(names.atom_names.size(), 22u);
  EXPECT_EQ(names.atom_names[1], "CH3");
  EXPECT_EQ(names.residue_names[1], "ACE");
  EXPECT_EQ(names.elements[0], "H");
  EXPECT_EQ(names.residue_numbers.back(), 3);
  torch::manual_seed(5);
  auto x = ala2->reference_configuration().repeat({3, 1, 1}) + 0.01 * torch::randn({3, 22, 3}, torch::kFloat64);
  const std::vector<std::string> labels{"a=1", "a=2", "a=3"};
  for (const char* file : {"m.pdb", "m.dcd", "m.xyz"}) write_trajectory(path(file), x, *ala2, labels);
  EXPECT_LE((read_configurations(path("m.pdb"), *ala2) - x).abs().max().item<double>(), 5e-5 + 1e-12);
  EXPECT_LE((read_configurations(path("m.dcd"), *ala2) - x).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(torch::allclose(read_xyz(path("m.xyz")).positions, 10 * x, 0, 1e-9));
  EXPECT_EQ(read_xyz(path("m.xyz")).elements, names.elements);
  EXPECT_NE(read_text(path("m.pdb")).find("ATOM      2  CH3 ACE A   1"), std::string::npos);
  EXPECT_THROW(write_trajectory(path("m.npz"), x, *ala2, labels), Error);
  EXPECT_THROW(write_trajectory(path("m.pdb"), x, *ala2, {"a=1"}), Error);
}

// Clusters: dimensionless lengths written as Angstrom numerically unchanged; 2D gets z = 0 and
// reads back as 2D.
TEST_F(Trajectory, ClusterFilesKeepReducedUnitsAndPadTwoDimensions) {
  auto dw4 = make_system("dw4");
  EXPECT_EQ(angstrom_per_length_unit(*dw4), 1.0);
  const auto names = particle_names(*dw4);
  EXPECT_EQ(names.elements, (std::vector<std::string>(4, "X")));
  EXPECT_EQ(names.residue_numbers, (std::vector<int64_t>{1, 2, 3, 4}));
  torch::manual_seed(6);
  auto x = 3 * torch::randn({2, 4, 2}, torch::kFloat64);
  for (const char* file : {"c.pdb", "c.dcd", "c.xyz"}) {
    write_trajectory(path(file), x, *dw4, {"", "b=2"});
    auto back = read_configurations(path(file), *dw4);
    ASSERT_EQ(back.sizes(), x.sizes()) << file;
    EXPECT_LE((back - x).abs().max().item<double>(), 5e-4 + 1e-12) << file;
  }
}

}  // namespace
}  // namespace mintjulep
