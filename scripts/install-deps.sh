#!/usr/bin/env bash
# Installs every Debian package MintJulep needs to build, test and run. Idempotent.
# libopenblas0-pthread is required next to libtorch: without it LibTorch falls back to the
# reference BLAS and every matrix product is ~40x slower. python3-mdtraj (with numpy) reads the
# PDB, DCD and XYZ files back in the trajectory_readback test. pybind11-dev and python3-dev build
# the Python module, python3-numpy and python3-pytest run its tests. clang and libclang-rt-14-dev
# (libFuzzer and the sanitizer runtimes) build the fuzz harnesses (scripts/fuzz.sh). gnuplot-nox
# draws the figures (scripts/make-figures.sh, scripts/plot-equal-time.sh).
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config
  libtorch-dev libopenblas0-pthread
  libopenmm-dev libopenmm-plugins
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libfmt-dev libzip-dev libpng-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-mdtraj
  pybind11-dev python3-dev python3-numpy python3-pytest
  clang libclang-rt-14-dev
  gnuplot-nox
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
