#include <mintjulep/threads.hpp>

#include <ATen/Parallel.h>

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <thread>

namespace mintjulep {

int set_threads(int threads) {
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // openblas_set_num_threads is looked up at run time: the BLAS behind LibTorch is chosen by
  // the system (update-alternatives) and need not be OpenBLAS.
  using SetBlasThreads = void (*)(int);
  if (auto* set_blas = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_blas(1);
  at::set_num_threads(threads);
  return at::get_num_threads();
}

bool keep_freed_memory() {
#if defined(__GLIBC__)
  // An explicit M_TRIM_THRESHOLD also stops glibc's dynamic adjustment of the thresholds.
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 &&
         mallopt(M_TOP_PAD, 64 << 20) == 1;
#else
  return false;
#endif
}

}  // namespace mintjulep
