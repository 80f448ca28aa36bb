#include "io/atomic_file.hpp"

#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mintjulep {

bool remove_tree(const std::string& path) noexcept {
  struct stat info;
  if (::lstat(path.c_str(), &info) != 0) return errno == ENOENT;
  // Depth first (children before their folder), not following symbolic links; C library calls
  // only, see io.hpp.
  auto remove_one = [](const char* name, const struct stat*, int, struct FTW*) {
    return ::remove(name) == 0 || errno == ENOENT ? 0 : -1;
  };
  return ::nftw(path.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0;
}

std::string write_error(const std::string& path, int error) {
  const std::string reason = std::strerror(error);
  switch (error) {
    case EACCES:
    case EPERM:
    case EROFS:
      return fmt::format("cannot write '{}': {}; write to another folder or make it writable (an earlier "
                         "file of that name is unchanged)",
                         path, reason);
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return fmt::format("writing '{}' failed: {}; free disk space (or raise the file size limit, ulimit -f) "
                         "or write to another disk (an earlier file of that name is unchanged)",
                         path, reason);
    case ENOENT:
    case ENOTDIR:
      return fmt::format("cannot write '{}': {}; create its folder first", path, reason);
    default:
      return fmt::format("writing '{}' failed: {} (an earlier file of that name is unchanged)", path, reason);
  }
}

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), temp_path_(path_ + fmt::format(".tmp{}", ::getpid())) {
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (file_ == nullptr) throw Error(write_error(path_, errno));
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(temp_path_.c_str());
  }
}

void AtomicFile::fail(int error) {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  std::remove(temp_path_.c_str());
  throw Error(write_error(path_, error));
}

void AtomicFile::write(const void* data, size_t size) {
  check(file_ != nullptr, "write to a closed file " + path_);
  if (std::fwrite(data, 1, size, file_) != size) fail(errno);
}

void AtomicFile::commit() {
  check(file_ != nullptr, "commit of a closed file " + path_);
  // Each step keeps its own errno: a later call may overwrite it.
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) fail(errno);
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) fail(errno);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) fail(errno);
}

}  // namespace mintjulep
