#pragma once
// Thread settings for LibTorch on the CPU.

namespace mintjulep {

// Uses `threads` intra-op threads (0: one per core) and keeps OpenBLAS single-threaded inside
// them: OpenBLAS's own pthreads otherwise compete with LibTorch's OpenMP threads, which made
// network evaluations 2-4x slower and erratic on 2 cores. Returns the thread count in use.
int set_threads(int threads);

}  // namespace mintjulep
