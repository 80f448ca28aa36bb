// Reading and writing .npy and .xyz files.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

namespace mintjulep {
namespace {

namespace fs = std::filesystem;

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mintjulep_io_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_text(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
  }
  fs::path dir_;
};

using Npy = TempDir;
using Xyz = TempDir;

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

}  // namespace
}  // namespace mintjulep
