#pragma once
// The main() of the benchmark programs: freed memory kept in the process (as the command-line
// tool does), threads from MINTJULEP_THREADS (default: one per core, OpenBLAS single-threaded
// inside them), then Google Benchmark as usual. MINTJULEP_RETURN_FREED_MEMORY=1 leaves glibc's
// defaults (to measure what keeping freed memory gives).
#include <mintjulep/threads.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>

#define MINTJULEP_BENCHMARK_MAIN()                                        \
  int main(int argc, char** argv) {                                       \
    if (!std::getenv("MINTJULEP_RETURN_FREED_MEMORY"))                    \
      mintjulep::keep_freed_memory();                                     \
    const char* env = std::getenv("MINTJULEP_THREADS");                   \
    mintjulep::set_threads(env ? std::atoi(env) : 0);                     \
    benchmark::Initialize(&argc, argv);                                   \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;     \
    benchmark::RunSpecifiedBenchmarks();                                  \
    benchmark::Shutdown();                                                \
    return 0;                                                             \
  }
