#pragma once
// Thread and allocator settings for LibTorch on the CPU.

namespace mintjulep {

// Uses `threads` intra-op threads (0: one per core) and keeps OpenBLAS single-threaded inside
// them: OpenBLAS's own pthreads otherwise compete with LibTorch's OpenMP threads, which made
// network evaluations 2-4x slower and erratic on 2 cores. Returns the thread count in use.
int set_threads(int threads);

// Keeps freed memory in the process instead of handing it back to the system at once. LibTorch
// allocates every CPU tensor with malloc and frees it when the last reference goes; glibc
// serves blocks above its mmap threshold (at most 32 MB) with a fresh mmap each, so every
// network edge tensor (LJ-13, batch 100: 4 MB) cost page faults and page clearing on each
// first touch, ~30% of an LJ-13 kernel step. With mmap off and a high trim threshold the heap
// keeps its pages and reuses them; peak memory is unchanged, the resident set stays at its
// peak. Called by the command-line tool and the benchmarks at start; returns false where the
// C library does not offer the settings (no effect then).
bool keep_freed_memory();

}  // namespace mintjulep
