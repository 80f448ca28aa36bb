#include "io/chunk_folder.hpp"

#include <mintjulep/error.hpp>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/atomic_file.hpp"

namespace mintjulep {

namespace fs = std::filesystem;

std::mt19937_64 chunk_rng(uint64_t seed, int64_t index, uint32_t stream) {
  const auto i = static_cast<uint64_t>(index);
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(i),
                    static_cast<uint32_t>(i >> 32), stream};
  return std::mt19937_64(seq);
}

void seed_chunk(uint64_t seed, int64_t index) {
  auto rng = chunk_rng(seed, index, 0);
  torch::manual_seed(rng());
}

ChunkRecord load_or_draw_chunk(const ChunkCache& cache, int64_t index, int64_t size,
                               const std::function<ChunkRecord()>& draw) {
  ChunkRecord record;
  if (cache.load && cache.load(index, record)) {
    check(record.count("y") && record.count("log_w") && record["y"].size(0) == size,
          "a kept chunk does not match this run; delete the kept chunks to draw them again");
    return record;
  }
  record = draw();
  if (cache.save) {
    ChunkRecord on_cpu;
    for (const auto& [name, tensor] : record) on_cpu[name] = tensor.to(torch::kCPU);
    cache.save(index, on_cpu);
  }
  return record;
}

namespace {

std::string chunk_path(const std::string& folder, int64_t index) {
  return (fs::path(folder) / fmt::format("chunk-{:06d}.pt", index)).string();
}

std::string read_key(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

ChunkFolder::ChunkFolder(std::string folder, const std::string& key) : folder_(std::move(folder)) {
  std::error_code ec;
  fs::create_directories(folder_, ec);
  if (ec || !fs::is_directory(folder_)) throw Error(write_error(folder_, ec ? ec.value() : ENOTDIR));
  const auto key_path = fs::path(folder_) / "key.txt";
  const bool same = fs::exists(key_path) && read_key(key_path) == key;
  if (!same) {
    // Chunks of another command (other method, seed, chunk size, run...), or of a folder whose
    // key was never written, are never mixed in.
    for (const auto& entry : fs::directory_iterator(folder_)) {
      if (entry.path().filename().string().rfind("chunk-", 0) != 0) continue;
      fs::remove(entry.path(), ec);
      discarded_ = true;
    }
    AtomicFile file(key_path.string());
    file.write(key);
    file.commit();
  }
  while (fs::exists(chunk_path(folder_, kept_))) ++kept_;
}

ChunkCache ChunkFolder::cache(torch::Device device) const {
  ChunkCache cache;
  const std::string folder = folder_;
  cache.load = [folder, device](int64_t index, ChunkRecord& record) {
    const auto path = chunk_path(folder, index);
    if (!fs::exists(path)) return false;
    try {
      torch::serialize::InputArchive archive;
      archive.load_from(path, device);
      record.clear();
      // keys() also lists the archive's own attributes (such as "training"): only tensors count.
      for (const auto& name : archive.keys()) {
        torch::Tensor tensor;
        if (archive.try_read(name, tensor)) record[name] = tensor;
      }
    } catch (const c10::Error& e) {
      throw Error(fmt::format("cannot read the finished chunk '{}' ({}); delete the folder '{}' to draw every "
                              "chunk again",
                              path, std::string(e.what_without_backtrace()).substr(0, 80), folder));
    }
    return true;
  };
  cache.save = [folder](int64_t index, const ChunkRecord& record) {
    torch::serialize::OutputArchive archive;
    for (const auto& [name, tensor] : record) archive.write(name, tensor);
    std::ostringstream bytes;
    archive.save_to(bytes);
    AtomicFile file(chunk_path(folder, index));
    file.write(bytes.str());
    file.commit();
  };
  return cache;
}

}  // namespace mintjulep
