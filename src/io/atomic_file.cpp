#include "io/atomic_file.hpp"

#include <mintjulep/error.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace mintjulep {

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), temp_path_(path_ + fmt::format(".tmp{}", ::getpid())) {
  file_ = std::fopen(temp_path_.c_str(), "wb");
  check(file_ != nullptr, fmt::format("cannot write '{}': {}; check that the folder exists and is "
                                      "writable",
                                      path_, std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(temp_path_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t size) {
  check(file_ != nullptr, "write to a closed file " + path_);
  check(std::fwrite(data, 1, size, file_) == size,
        fmt::format("writing '{}' failed: {}", path_, std::strerror(errno)));
}

void AtomicFile::commit() {
  check(file_ != nullptr, "commit of a closed file " + path_);
  const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed || std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temp_path_.c_str());
    throw Error(fmt::format("writing '{}' failed: {}", path_, reason));
  }
}

}  // namespace mintjulep
