#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>
#include <zip.h>

#include "io/atomic_file.hpp"

namespace mintjulep {
namespace {

struct NpyDtype {
  const char* descr;
  torch::ScalarType type;
  int64_t item_size;
};

const NpyDtype kDtypes[] = {{"<f4", torch::kFloat32, 4},
                            {"<f8", torch::kFloat64, 8},
                            {"<i4", torch::kInt32, 4},
                            {"<i8", torch::kInt64, 8}};

std::string header_field(const std::string& header, const std::string& key,
                         const std::string& value_pattern, const std::string& path) {
  std::smatch m;
  const std::regex re("['\"]" + key + "['\"]\\s*:\\s*(" + value_pattern + ")");
  check(std::regex_search(header, m, re),
        fmt::format("{}: .npy header has no valid '{}' entry; is this a numpy .npy file?", path, key));
  return m[1];
}

// Parses .npy data from a stream; `path` names it in error messages.
torch::Tensor parse_npy(std::istream& in, const std::string& path) {
  char magic[8] = {};
  in.read(magic, 8);
  check(in.gcount() == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0,
        fmt::format("'{}' is not a numpy .npy file (bad magic bytes); save it with numpy.save", path));
  const int major = static_cast<unsigned char>(magic[6]);
  check(major >= 1 && major <= 3, fmt::format("{}: unsupported .npy format version {}", path, major));
  uint32_t header_len = 0;
  unsigned char len_bytes[4] = {};
  const int len_size = major == 1 ? 2 : 4;
  in.read(reinterpret_cast<char*>(len_bytes), len_size);
  for (int i = len_size - 1; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  check(in.good() && header_len < (1u << 20), fmt::format("{}: truncated .npy header", path));
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  check(in.gcount() == static_cast<std::streamsize>(header_len),
        fmt::format("{}: truncated .npy header", path));

  const std::string descr = header_field(header, "descr", "'[^']*'|\"[^\"]*\"", path);
  const std::string descr_value = descr.substr(1, descr.size() - 2);
  const NpyDtype* dtype = nullptr;
  for (const auto& d : kDtypes)
    if (descr_value == d.descr) dtype = &d;
  check(dtype != nullptr,
        fmt::format("{}: unsupported .npy dtype '{}'; use little-endian float32/float64 "
                    "(e.g. array.astype('<f8'))",
                    path, descr_value));
  const bool fortran = header_field(header, "fortran_order", "True|False", path) == "True";
  const std::string shape_text = header_field(header, "shape", "\\([^)]*\\)", path);
  std::vector<int64_t> shape;
  static const std::regex number("\\d+");
  for (auto it = std::sregex_iterator(shape_text.begin(), shape_text.end(), number);
       it != std::sregex_iterator(); ++it)
    shape.push_back(std::stoll(it->str()));

  int64_t count = 1;
  for (int64_t s : shape) count *= s;
  auto data = torch::empty({count}, torch::TensorOptions().dtype(dtype->type));
  in.read(static_cast<char*>(data.data_ptr()), count * dtype->item_size);
  check(in.gcount() == count * dtype->item_size,
        fmt::format("{}: .npy file is truncated: expected {} values of {} bytes", path, count,
                    dtype->item_size));
  if (!fortran) return data.reshape(shape);
  // Fortran order: the data is the C-order array of the reversed shape, transposed.
  std::vector<int64_t> reversed(shape.rbegin(), shape.rend());
  std::vector<int64_t> perm;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) perm.push_back(i);
  return data.reshape(reversed).permute(perm).contiguous();
}

}  // namespace

torch::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), fmt::format("cannot open '{}': no such file or not readable", path));
  return parse_npy(in, path);
}

std::map<std::string, torch::Tensor> read_npz(const std::string& path) {
  int error = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY, &error);
  check(archive != nullptr,
        fmt::format("cannot open '{}' as a numpy .npz archive (missing file or not a zip)", path));
  std::map<std::string, torch::Tensor> arrays;
  const zip_int64_t count = zip_get_num_entries(archive, 0);
  for (zip_int64_t k = 0; k < count; ++k) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(archive, k, 0, &stat) != 0) continue;
    std::string name = stat.name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    std::string bytes(stat.size, '\0');
    zip_file_t* file = zip_fopen_index(archive, k, 0);
    const zip_int64_t got = file ? zip_fread(file, bytes.data(), stat.size) : -1;
    if (file) zip_fclose(file);
    if (got != static_cast<zip_int64_t>(stat.size)) {
      zip_discard(archive);
      throw Error(fmt::format("{}: cannot read '{}' (corrupt or compressed with an unsupported method)",
                              path, name));
    }
    std::istringstream in(bytes);
    try {
      arrays[name.substr(0, name.size() - 4)] = parse_npy(in, path + ":" + name);
    } catch (...) {
      zip_discard(archive);
      throw;
    }
  }
  zip_discard(archive);
  return arrays;
}

std::string npy_bytes(const torch::Tensor& array) {
  auto data = array.detach().to(torch::kCPU).contiguous();
  const NpyDtype* dtype = nullptr;
  for (const auto& d : kDtypes)
    if (data.scalar_type() == d.type) dtype = &d;
  check(dtype != nullptr, fmt::format("cannot write {} tensors to .npy",
                                      std::string(c10::toString(data.scalar_type()))));
  std::string shape = "(";
  for (int64_t i = 0; i < data.dim(); ++i) shape += std::to_string(data.size(i)) + ", ";
  if (data.dim() > 1) shape.resize(shape.size() - 2);
  if (data.dim() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", dtype->descr, shape);
  // Pad with spaces so that magic (6) + version (2) + length (2) + header ends on 64 bytes.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  const auto len = static_cast<uint16_t>(header.size());
  bytes.push_back(static_cast<char>(len & 0xff));
  bytes.push_back(static_cast<char>(len >> 8));
  bytes += header;
  bytes.append(static_cast<const char*>(data.data_ptr()),
               static_cast<size_t>(data.numel()) * static_cast<size_t>(dtype->item_size));
  return bytes;
}

void write_npy(const std::string& path, const torch::Tensor& array) {
  const std::string bytes = npy_bytes(array);
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

void write_npz(const std::string& path,
               const std::vector<std::pair<std::string, torch::Tensor>>& arrays) {
  // libzip writes the archive under a temporary name; it is renamed into place when complete.
  const std::string temp = path + fmt::format(".tmp{}", ::getpid());
  int error = 0;
  zip_t* archive = zip_open(temp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  check(archive != nullptr, fmt::format("cannot write '{}': check that the folder exists and is writable", path));
  std::vector<std::string> buffers;
  buffers.reserve(arrays.size());
  for (const auto& [name, array] : arrays) {
    buffers.push_back(npy_bytes(array));
    zip_source_t* source = zip_source_buffer(archive, buffers.back().data(), buffers.back().size(), 0);
    const zip_int64_t index =
        source == nullptr ? -1 : zip_file_add(archive, (name + ".npy").c_str(), source, ZIP_FL_OVERWRITE);
    // A fixed member time stamp (1980-01-01 00:00, the first DOS date) instead of the current
    // time: the same arrays give the same bytes, so that checksums of results are reproducible.
    if (index < 0 || zip_file_set_dostime(archive, static_cast<zip_uint64_t>(index), 0, (1 << 5) | 1, 0) < 0) {
      if (source != nullptr && index < 0) zip_source_free(source);
      zip_discard(archive);
      throw Error(fmt::format("writing '{}' failed while adding '{}'", path, name));
    }
  }
  if (zip_close(archive) != 0) {
    zip_discard(archive);
    std::remove(temp.c_str());
    throw Error(fmt::format("writing '{}' failed (disk full?)", path));
  }
  check(std::rename(temp.c_str(), path.c_str()) == 0, fmt::format("cannot move '{}' into place", path));
}

}  // namespace mintjulep
