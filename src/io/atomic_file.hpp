#pragma once
// A file written under a temporary name and renamed over its target on commit(), so a
// reader never sees a half-written file and an interrupted write leaves the old one intact.
#include <cstdio>
#include <string>

namespace mintjulep {

// The one-line message of a failed write of `path` with errno `error`: the problem and its fix
// (a folder that is not writable, a full disk or file size limit, a missing folder), and that an
// earlier file of that name is unchanged.
std::string write_error(const std::string& path, int error);

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(const std::string& text) { write(text.data(), text.size()); }
  void commit();

 private:
  [[noreturn]] void fail(int error);  // closes and removes the temporary file, then throws

  std::string path_, temp_path_;
  std::FILE* file_ = nullptr;
};

}  // namespace mintjulep
