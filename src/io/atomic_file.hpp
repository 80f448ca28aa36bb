#pragma once
// A file written under a temporary name and renamed over its target on commit(), so a
// reader never sees a half-written file and an interrupted write leaves the old one intact.
#include <cstdio>
#include <string>

namespace mintjulep {

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
  std::string path_, temp_path_;
  std::FILE* file_ = nullptr;
};

}  // namespace mintjulep
