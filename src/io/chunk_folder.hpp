#pragma once
// Finished chunks of a sampling run kept as files in a folder, FOLDER/chunk-NNNNNN.pt (each
// written atomically, so a kill leaves whole chunks only), next to FOLDER/key.txt, the
// parameters of the command that drew them.
#include <mintjulep/chunks.hpp>

#include <string>

namespace mintjulep {

class ChunkFolder {
 public:
  // Opens `folder` for the command described by `key`, creating it; chunks kept there for
  // another key are deleted (discarded() tells).
  ChunkFolder(std::string folder, const std::string& key);
  int64_t kept() const { return kept_; }  // consecutive chunks from 0 found at opening
  bool discarded() const { return discarded_; }
  const std::string& folder() const { return folder_; }
  // Loaded tensors go to `device`.
  ChunkCache cache(torch::Device device) const;

 private:
  std::string folder_;
  int64_t kept_ = 0;
  bool discarded_ = false;
};

}  // namespace mintjulep
