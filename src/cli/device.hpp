#pragma once
#include <mintjulep/error.hpp>

#include <torch/cuda.h>
#include <torch/types.h>

namespace mintjulep::cli {

// "cpu" or "cuda[:k]"; a CUDA device must be available in this build.
inline torch::Device parse_device(std::string name) {
  if (name.empty()) name = "cpu";
  check(name == "cpu" || name.rfind("cuda", 0) == 0,
        "--device must be 'cpu' or 'cuda' (or 'cuda:K'), got '" + name + "'");
  if (name != "cpu")
    check(torch::cuda::is_available(),
          "--device " + name + " requested but no CUDA device is available to this build; "
          "use --device cpu or build against a CUDA LibTorch");
  return torch::Device(name);
}

}  // namespace mintjulep::cli
