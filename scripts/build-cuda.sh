#!/usr/bin/env bash
# Builds MintJulep with CUDA on a machine that has a CUDA build of PyTorch (its LibTorch), nvcc,
# CMake and ninja, but no package manager or network: every other dependency comes from the
# Debian packages in .cuda-deps/ (scripts/fetch-cuda-deps.sh), unpacked into a prefix, not
# into /. Builds in build-cuda/ and writes build-cuda/env.sh, which sets LD_LIBRARY_PATH for
# running the binaries:
#   bash scripts/build-cuda.sh && source build-cuda/env.sh && build-cuda/mintjulep --help
# Settings (environment): PYTHON (python3), CUDA_DEPS (.cuda-deps), CUDA_PREFIX
# (/tmp/cuda-prefix), BUILD_DIR (build-cuda), JOBS (nproc), TORCH_CUDA_ARCH_LIST (9.0),
# CUDA_ARCHITECTURES (90), MINTJULEP_BUILD_TESTS / MINTJULEP_BUILD_BENCHMARKS (ON / OFF),
# CONFIGURE_ONLY (0), KEEP_GOING (0).
# Also works against a CPU LibTorch (Debian's 1.13) when nvcc is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
PYTHON=${PYTHON:-python3}
deps=$(cd "${CUDA_DEPS:-.cuda-deps}" && pwd)
prefix=${CUDA_PREFIX:-/tmp/cuda-prefix}
build=${BUILD_DIR:-build-cuda}
jobs=${JOBS:-$(nproc)}
arch=x86_64-linux-gnu
lib=$prefix/usr/lib/$arch
say() { echo "build-cuda: $*"; }
system_soname() { "$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | awk -v n="$1" '$1 == n && !found {print $NF; found = 1}'; }
has_soname() { [ -n "$(system_soname "$1")" ]; }

# ---- 1. Unpack the packages (again only when the set of packages changed).
stamp=$prefix/.unpacked
want=$(cd "$deps" && ls -1 *.deb fallback/*.deb 2>/dev/null | sort | tr '\n' ' ')
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$prefix"
  mkdir -p "$prefix/fallback"
  for deb in "$deps"/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
  for deb in "$deps"/fallback/*.deb; do [ -e "$deb" ] && dpkg-deb -x "$deb" "$prefix/fallback"; done
  # Debian 12 still ships some libraries in /lib: fold them into usr/lib.
  if [ -d "$prefix/lib" ]; then cp -a "$prefix/lib/." "$prefix/usr/lib/"; rm -rf "$prefix/lib"; fi
  # A fallback run-time library is used only where the system lacks its soname.
  for f in "$prefix"/fallback/{lib,usr/lib}/$arch/*.so.*; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    soname=$(objdump -p "$f" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
    [ -z "$soname" ] || [ "$soname" = "$name" ] || continue
    if ! has_soname "$name"; then
      say "the system lacks $name: using the copy from $deps/fallback"
      cp -L "$f" "$lib/$name"
    fi
  done
  # Absolute symlinks (libz.so -> /lib/.../libz.so.1.2.13) point into the prefix, or else at
  # the system's library of the same soname.
  while IFS= read -r link; do
    target=$(readlink "$link")
    base=$(basename "$target")
    if [ -e "$prefix/usr/lib/$arch/$base" ]; then
      ln -sfn "$prefix/usr/lib/$arch/$base" "$link"
    elif [ -e "$prefix/fallback$target" ]; then
      soname=$(basename "$target" | sed -E 's/(\.so\.[0-9]+).*/\1/')
      system=$(system_soname "$soname")
      if [ -n "$system" ]; then ln -sfn "$system" "$link"; else cp -a "$prefix/fallback$target" "$lib/"; ln -sfn "$lib/$base" "$link"; fi
    fi
  done < <(find "$prefix/usr" -type l -lname '/*')
  echo "$want" >"$stamp"
  say "unpacked $(echo "$want" | wc -w) packages into $prefix"
fi

# ---- 2. LibTorch from the torch Python package.
eval "$("$PYTHON" - <<'PY'
import os, torch
print(f"torch_version={torch.__version__}")
print(f"torch_cmake={torch.utils.cmake_prefix_path}")
print(f"torch_root={os.path.dirname(torch.__file__)}")
print(f"torch_abi={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
print(f"torch_cuda={torch.version.cuda or ''}")
print(f"torch_gpu={int(torch.cuda.is_available())}")
PY
)"
say "torch $torch_version (CUDA ${torch_cuda:-none}, GPU visible: $torch_gpu, cxx11 ABI $torch_abi) at $torch_root"
# The Debian libraries use the C++11 ABI (std::string = std::__cxx11::basic_string).
[ "$torch_abi" = 1 ] || say "WARNING: this LibTorch uses the old C++ ABI; linking with the Debian libraries will fail"
# CUDA libraries of the pip wheels (nvidia/*/lib), for the linker and at run time.
site=$(dirname "$torch_root")
nvidia_libs=$( (find "$site/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null || true) | sort | tr "\n" ":")

# C++ standard: 17 unless these LibTorch headers require 20.
std=17
grep -qs "C++20 or later" "$torch_root/include/ATen/ATen.h" "$torch_root/include/torch/csrc/api/include/torch/all.h" && std=20
say "C++$std"

# ---- 3. CUDA toolkit (nvcc), when the LibTorch is a CUDA build.
cuda_args=()
if [ -n "$torch_cuda" ]; then
  nvcc=$(command -v nvcc || true)
  for c in /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc "$site"/nvidia/cu*/bin/nvcc "$site"/nvidia/cuda_nvcc/bin/nvcc; do
    [ -n "$nvcc" ] && break
    [ -x "$c" ] && nvcc=$c
  done
  if [ -n "$nvcc" ]; then
    cuda_root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    export PATH="$cuda_root/bin:$PATH" CUDACXX="$nvcc" CUDA_HOME=${CUDA_HOME:-$cuda_root}
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
    say "nvcc $nvcc ($("$nvcc" --version | grep -o 'release [0-9.]*')), toolkit $cuda_root, TORCH_CUDA_ARCH_LIST $TORCH_CUDA_ARCH_LIST"
    cuda_args=(-DCUDAToolkit_ROOT="$cuda_root" -DCUDA_TOOLKIT_ROOT_DIR="$cuda_root"
               -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-90}")
  else
    say "WARNING: torch is a CUDA build but no nvcc was found; LibTorch's CMake config will probably fail"
  fi
fi

# ---- 4. Configure and build.
link="-L$lib -Wl,-rpath-link,$lib -Wl,-rpath,$lib"
export LIBRARY_PATH="$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$lib:$torch_root/lib:${nvidia_libs}${LD_LIBRARY_PATH:-}"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
common=(-S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
        -DCMAKE_CXX_STANDARD="$std"
        -DCMAKE_PREFIX_PATH="$prefix/usr;$lib/cmake;$prefix/usr/share/cmake;$torch_cmake"
        -DCMAKE_LIBRARY_ARCHITECTURE=$arch
        -DOPENMM_INCLUDE_DIR="$prefix/usr/include/openmm" -DOPENMM_LIBRARY="$lib/libOpenMM.so"
        -DCMAKE_EXE_LINKER_FLAGS="$link" -DCMAKE_SHARED_LINKER_FLAGS="$link"
        -DMINTJULEP_BUILD_TESTS="${MINTJULEP_BUILD_TESTS:-ON}"
        -DMINTJULEP_BUILD_BENCHMARKS="${MINTJULEP_BUILD_BENCHMARKS:-OFF}")
if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
  if ! cmake "${common[@]}" "${cuda_args[@]}"; then
    # Last resort: LibTorch's own CMake config could not be used (CUDA toolkit parts it looks
    # for are missing); describe the LibTorch in the wheel directly.
    say "LibTorch's CMake config failed; retrying with a minimal Torch config for $torch_root"
    shim=$prefix/torch-shim
    mkdir -p "$shim"
    cat >"$shim/TorchConfig.cmake" <<CMAKE
set(TORCH_INCLUDE_DIRS "$torch_root/include" "$torch_root/include/torch/csrc/api/include")
set(_libs "$torch_root/lib/libtorch.so" "$torch_root/lib/libtorch_cpu.so" "$torch_root/lib/libc10.so")
if(EXISTS "$torch_root/lib/libtorch_cuda.so")
  list(APPEND _libs "-Wl,--no-as-needed,$torch_root/lib/libtorch_cuda.so" "-Wl,--as-needed" "$torch_root/lib/libc10_cuda.so")
endif()
list(APPEND _libs "-Wl,--allow-shlib-undefined" "-Wl,-rpath,$torch_root/lib")
add_library(torch INTERFACE IMPORTED)
set_target_properties(torch PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "\${TORCH_INCLUDE_DIRS}"
  INTERFACE_LINK_LIBRARIES "\${_libs}" INTERFACE_COMPILE_OPTIONS "-D_GLIBCXX_USE_CXX11_ABI=$torch_abi")
set(TORCH_LIBRARIES torch)
set(Torch_FOUND TRUE)
CMAKE
    rm -rf "$build"
    cmake "${common[@]}" -DTorch_DIR="$shim"
  fi
fi
[ "${CONFIGURE_ONLY:-0}" = 1 ] && exit 0
# KEEP_GOING=1: report every failing file, not just the first.
keep=()
[ "${KEEP_GOING:-0}" = 1 ] && { [ -f "$build/build.ninja" ] && keep=(-- -k 0) || keep=(-- -k); }
cmake --build "$build" --parallel "$jobs" "${keep[@]}"

cat >"$build/env.sh" <<ENV
# Run-time library path for the binaries in $build (source this file).
export LD_LIBRARY_PATH="$LD_LIBRARY_PATH"
export MINTJULEP_DATA_DIR="$root/data"
ENV
say "built $build/mintjulep; run-time environment: source $build/env.sh"
