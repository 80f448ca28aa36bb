#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <zip.h>

#include "core/printable.hpp"
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

[[noreturn]] void bad_entry(const std::string& path, const std::string& key) {
  throw Error(fmt::format("{}: .npy header has no valid '{}' entry; is this a numpy .npy file?", path, key));
}

// Where the value of `key` starts in a .npy header (a Python dict literal such as
// "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"). Parsed by hand: the header
// may be long and std::regex recurses once per character.
size_t header_value(const std::string& header, const std::string& key, const std::string& path) {
  static const char* const kSpace = " \t\r\n";
  for (const char quote : {'\'', '"'}) {
    const std::string quoted = quote + key + quote;
    for (size_t at = header.find(quoted); at != std::string::npos; at = header.find(quoted, at + 1)) {
      size_t p = header.find_first_not_of(kSpace, at + quoted.size());
      if (p == std::string::npos || header[p] != ':') continue;
      p = header.find_first_not_of(kSpace, p + 1);
      if (p != std::string::npos) return p;
    }
  }
  bad_entry(path, key);
}

std::string parse_descr(const std::string& header, const std::string& path) {
  const size_t p = header_value(header, "descr", path);
  const char quote = header[p];
  if (quote != '\'' && quote != '"') bad_entry(path, "descr");
  const size_t end = header.find(quote, p + 1);
  if (end == std::string::npos) bad_entry(path, "descr");
  return header.substr(p + 1, end - p - 1);
}

bool parse_fortran_order(const std::string& header, const std::string& path) {
  const size_t p = header_value(header, "fortran_order", path);
  if (header.compare(p, 4, "True") == 0) return true;
  if (header.compare(p, 5, "False") == 0) return false;
  bad_entry(path, "fortran_order");
}

// The shape tuple, e.g. "(2, 3)", "(7,)" or "()": non-negative integers separated by commas.
std::vector<int64_t> parse_shape(const std::string& header, const std::string& path) {
  static const char* const kSpace = " \t\r\n";
  const size_t p = header_value(header, "shape", path);
  const size_t end = header.find(')', p);
  if (header[p] != '(' || end == std::string::npos) bad_entry(path, "shape");
  const std::string inside = header.substr(p + 1, end - p - 1);
  std::vector<std::string> items;
  for (size_t start = 0;;) {
    const size_t comma = inside.find(',', start);
    const std::string item = inside.substr(start, comma == std::string::npos ? comma : comma - start);
    const size_t first = item.find_first_not_of(kSpace);
    items.push_back(first == std::string::npos
                        ? std::string()
                        : item.substr(first, item.find_last_not_of(kSpace) - first + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (items.back().empty()) items.pop_back();  // "()" or the trailing comma of "(7,)"
  const std::string tuple = printable(header.substr(p, end - p + 1));
  std::vector<int64_t> shape;
  for (const std::string& item : items) {
    check(!item.empty() && item.find_first_not_of("0123456789") == std::string::npos,
          fmt::format("{}: .npy shape {} must hold non-negative integers", path, tuple));
    check(item.size() <= 18, fmt::format("{}: .npy shape {} is too large", path, tuple));
    shape.push_back(std::stoll(item));
  }
  return shape;
}

// Bytes left in `in` after the read position.
std::streamoff remaining_bytes(std::istream& in) {
  const std::streampos here = in.tellg();
  in.seekg(0, std::ios::end);
  const std::streampos end = in.tellg();
  in.seekg(here);
  return here < 0 || end < here ? 0 : static_cast<std::streamoff>(end - here);
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

  const std::string descr_value = parse_descr(header, path);
  const NpyDtype* dtype = nullptr;
  for (const auto& d : kDtypes)
    if (descr_value == d.descr) dtype = &d;
  check(dtype != nullptr,
        fmt::format("{}: unsupported .npy dtype '{}'; use little-endian float32/float64 "
                    "(e.g. array.astype('<f8'))",
                    path, printable(descr_value)));
  const bool fortran = parse_fortran_order(header, path);
  const std::vector<int64_t> shape = parse_shape(header, path);

  // The declared size must be in the file before anything is allocated.
  const int64_t available = remaining_bytes(in) / dtype->item_size;
  int64_t count = 1;
  for (int64_t s : shape) {
    check(s == 0 || count <= available / s,
          fmt::format("{}: .npy file is truncated: its shape needs more than the {} values of {} "
                      "bytes it holds",
                      path, available, dtype->item_size));
    count *= s;
  }
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
  std::vector<char> chunk(1 << 16);
  for (zip_int64_t k = 0; k < count; ++k) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(archive, k, 0, &stat) != 0 || !(stat.valid & ZIP_STAT_NAME) || stat.name == nullptr)
      continue;
    std::string name = stat.name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    // Read in chunks rather than trusting the size the archive declares, which may be anything.
    std::string bytes;
    zip_file_t* file = zip_fopen_index(archive, k, 0);
    bool ok = file != nullptr;
    while (ok) {
      const zip_int64_t got = zip_fread(file, chunk.data(), chunk.size());
      if (got <= 0) {
        ok = got == 0;
        break;
      }
      bytes.append(chunk.data(), static_cast<size_t>(got));
    }
    if (file) zip_fclose(file);
    if (!ok || ((stat.valid & ZIP_STAT_SIZE) && bytes.size() != stat.size)) {
      zip_discard(archive);
      throw Error(fmt::format("{}: cannot read '{}' (corrupt or compressed with an unsupported method)",
                              path, printable(name)));
    }
    std::istringstream in(bytes);
    try {
      arrays[name.substr(0, name.size() - 4)] = parse_npy(in, path + ":" + printable(name));
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
  // libzip writes the archive only here (into a temporary file of its own, next to `temp`): a
  // folder that is not writable or a full disk shows up now, with the errno in the zip error.
  if (zip_close(archive) != 0) {
    zip_error_t* error = zip_get_error(archive);
    const bool system = zip_error_system_type(error) == ZIP_ET_SYS && zip_error_code_system(error) != 0;
    const int code = zip_error_code_system(error);
    const std::string reason = zip_error_strerror(error);
    zip_discard(archive);
    std::remove(temp.c_str());
    if (system) throw Error(write_error(path, code));
    throw Error(fmt::format("writing '{}' failed: {} (an earlier file of that name is unchanged)", path,
                            printable(reason)));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int code = errno;
    std::remove(temp.c_str());
    throw Error(write_error(path, code));
  }
}

}  // namespace mintjulep
