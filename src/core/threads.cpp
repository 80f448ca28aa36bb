#include <mintjulep/threads.hpp>

#include <ATen/Parallel.h>

#include <dlfcn.h>

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

}  // namespace mintjulep
