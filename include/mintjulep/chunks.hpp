#pragma once
// Chunked sampling that an interrupted run can continue: every chunk draws from random streams
// of its own, seeded from (seed, chunk index), and finished chunks may be kept in a cache that a
// rerun takes them from instead of drawing them again.
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>

namespace mintjulep {

// A finished chunk's results, by name.
using ChunkRecord = std::map<std::string, torch::Tensor>;

// Where finished chunks are kept. load(index, record) fills the record of a chunk finished
// earlier and returns true, or returns false; save(index, record) keeps one. Either may be empty.
struct ChunkCache {
  std::function<bool(int64_t, ChunkRecord&)> load;
  std::function<void(int64_t, const ChunkRecord&)> save;
};

// Random stream `stream` of chunk `index` of a run seeded `seed`: a chunk draws the same numbers
// whether or not the chunks before it ran in this process.
std::mt19937_64 chunk_rng(uint64_t seed, int64_t index, uint32_t stream);

// Seeds torch's default generators for chunk `index` (stream 0 of chunk_rng).
void seed_chunk(uint64_t seed, int64_t index);

// Chunk `index` of `size` samples, a record with "y" and "log_w": the one kept in the cache when
// there is one (checked to hold `size` samples), otherwise draw()'s, which is then kept.
ChunkRecord load_or_draw_chunk(const ChunkCache& cache, int64_t index, int64_t size,
                               const std::function<ChunkRecord()>& draw);

}  // namespace mintjulep
