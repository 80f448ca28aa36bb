// DCD trajectories in the CHARMM layout that VMD, MDAnalysis and mdtraj read: Fortran
// unformatted records (each framed by its byte length as int32), little endian. Header record:
// "CORD" and 20 int32 control words; a title record; the atom count; then per frame one
// record each of the N float32 x, y and z coordinates in Angstrom.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>

#include "io/atomic_file.hpp"

namespace mintjulep {
namespace {

constexpr int kCharmmVersion = 24;  // a non-zero last control word marks the CHARMM layout

void put_int32(std::string& out, int32_t v) {
  const auto u = static_cast<uint32_t>(v);
  for (int b = 0; b < 4; ++b) out += static_cast<char>((u >> (8 * b)) & 0xff);
}

void put_float32(std::string& out, float v) {
  int32_t bits;
  std::memcpy(&bits, &v, 4);
  put_int32(out, bits);
}

int32_t get_int32(const std::string& in, size_t at) {
  uint32_t u = 0;
  for (int b = 0; b < 4; ++b) u |= static_cast<uint32_t>(static_cast<unsigned char>(in[at + b])) << (8 * b);
  return static_cast<int32_t>(u);
}

void put_record(std::string& out, const std::string& body) {
  put_int32(out, static_cast<int32_t>(body.size()));
  out += body;
  put_int32(out, static_cast<int32_t>(body.size()));
}

// Reads the record at `at`, checks its closing length marker, and moves `at` past it.
std::string get_record(const std::string& in, size_t& at, const std::string& path, const char* what) {
  check(at + 4 <= in.size(), fmt::format("{}: file ends where the {} record was expected", path, what));
  const int32_t size = get_int32(in, at);
  check(size >= 0 && at + 8 + static_cast<size_t>(size) <= in.size() &&
            get_int32(in, at + 4 + static_cast<size_t>(size)) == size,
        fmt::format("{}: the {} record is truncated or malformed; not a DCD file", path, what));
  std::string body = in.substr(at + 4, static_cast<size_t>(size));
  at += 8 + static_cast<size_t>(size);
  return body;
}

std::string title_line(const std::string& text) {
  std::string line = text.substr(0, 80);
  line.resize(80, ' ');
  return line;
}

}  // namespace

void write_dcd(const std::string& path, const torch::Tensor& positions_angstrom) {
  const auto& x0 = positions_angstrom;
  check(x0.dim() == 3 && (x0.size(2) == 2 || x0.size(2) == 3),
        "write_dcd needs positions of shape (frames, atoms, 2 or 3)");
  const int64_t frames = x0.size(0), atoms = x0.size(1);
  check(frames <= INT32_MAX && 4 * atoms <= INT32_MAX, "too many frames or atoms for a DCD file");
  auto x = x0.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  if (x.size(2) == 2) x = torch::cat({x, torch::zeros({frames, atoms, 1}, x.options())}, 2);
  x = x.permute({0, 2, 1}).contiguous();  // (F, 3, N): the x, y and z records of each frame

  std::string header = "CORD";
  int32_t control[20] = {};
  control[0] = static_cast<int32_t>(frames);  // NSET
  control[1] = 0;                             // ISTART
  control[2] = 1;                             // NSAVC: steps between frames
  control[3] = static_cast<int32_t>(frames);  // NSTEP
  control[19] = kCharmmVersion;
  for (int k = 0; k < 20; ++k) {
    if (k == 9) put_float32(header, 1.0f);  // DELTA, the time step (no time axis here)
    else put_int32(header, control[k]);     // [10] = 0: no unit cell; [11] = 0: not 4D
  }
  std::string text;
  put_record(text, header);
  std::string titles;
  put_int32(titles, 2);
  titles += title_line("REMARKS written by mintjulep");
  titles += title_line("REMARKS positions in Angstrom, no unit cell");
  put_record(text, titles);
  std::string count;
  put_int32(count, static_cast<int32_t>(atoms));
  put_record(text, count);

  const auto* data = x.data_ptr<float>();
  const size_t bytes = static_cast<size_t>(4 * atoms);
  text.reserve(text.size() + static_cast<size_t>(frames) * 3 * (bytes + 8));
  for (int64_t f = 0; f < frames; ++f) {
    for (int64_t c = 0; c < 3; ++c) {
      put_int32(text, static_cast<int32_t>(bytes));
      // Little-endian float32, as on every platform LibTorch runs on.
      text.append(reinterpret_cast<const char*>(data + (f * 3 + c) * atoms), bytes);
      put_int32(text, static_cast<int32_t>(bytes));
    }
  }
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

torch::Tensor read_dcd(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), fmt::format("cannot open '{}': no such file or not readable", path));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = 0;
  const std::string header = get_record(bytes, at, path, "header");
  check(header.size() == 84 && header.compare(0, 4, "CORD") == 0,
        fmt::format("{}: no CORD header; not a little-endian CHARMM DCD file", path));
  auto control = [&](int k) { return get_int32(header, 4 + 4 * static_cast<size_t>(k)); };
  check(control(8) == 0, fmt::format("{}: DCD files with fixed atoms are not supported", path));
  check(control(11) == 0, fmt::format("{}: 4D DCD files are not supported", path));
  const bool has_cell = control(19) != 0 && control(10) != 0;
  get_record(bytes, at, path, "title");
  const std::string count = get_record(bytes, at, path, "atom count");
  check(count.size() == 4, fmt::format("{}: malformed atom count record", path));
  const int64_t atoms = get_int32(count, 0);
  check(atoms > 0, fmt::format("{}: DCD file with {} atoms", path, atoms));
  std::vector<float> values;
  int64_t frames = 0;
  while (at < bytes.size()) {
    if (has_cell) get_record(bytes, at, path, "unit cell");
    for (int c = 0; c < 3; ++c) {
      const std::string record = get_record(bytes, at, path, "coordinate");
      check(static_cast<int64_t>(record.size()) == 4 * atoms,
            fmt::format("{}: frame {} has a coordinate record of {} bytes, not {}", path, frames,
                        record.size(), 4 * atoms));
      const size_t start = values.size();
      values.resize(start + static_cast<size_t>(atoms));
      std::memcpy(values.data() + start, record.data(), record.size());
    }
    ++frames;
  }
  check(frames > 0, fmt::format("{}: DCD file without frames", path));
  // Stored (F, 3, N); callers want (F, N, 3).
  return torch::tensor(values, torch::kFloat32).reshape({frames, 3, atoms}).permute({0, 2, 1}).contiguous();
}

}  // namespace mintjulep
