#!/usr/bin/env bash
# Downloads the Debian packages that scripts/build-cuda.sh unpacks on a machine with a CUDA
# PyTorch but no package manager or network: every build dependency except LibTorch (which the
# torch Python package carries). Run on a Debian machine with apt; the folder (default
# .cuda-deps/) travels with the source tree.
#   bash scripts/fetch-cuda-deps.sh [FOLDER]
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.cuda-deps}
# Headers, CMake configs and the shared libraries they link.
packages=(
  libopenmm-dev libopenmm7.7
  libtomlplusplus-dev libtomlplusplus3
  libcli11-dev nlohmann-json3-dev
  libfmt-dev libfmt9
  libzip-dev libzip4
  libpng-dev libpng16-16 zlib1g-dev
  libgtest-dev libgmock-dev
  libbenchmark-dev libbenchmark1debian
)
# Run-time libraries that a plain Ubuntu/Debian image usually has already (libzip needs them);
# build-cuda.sh uses these copies only for a library the system lacks.
fallback=(zlib1g libssl3 libbz2-1.0)
mkdir -p "$dest/fallback"
rm -f "$dest"/*.deb "$dest"/fallback/*.deb
dest=$(cd "$dest" && pwd)
# apt-get download writes into the current folder; a folder _apt cannot write to only costs
# a warning.
(cd "$dest" && apt-get download "${packages[@]}")
(cd "$dest/fallback" && apt-get download "${fallback[@]}")
(cd "$dest" && ls -1 *.deb fallback/*.deb) >"$dest/MANIFEST"
echo "fetch-cuda-deps: $(grep -c . "$dest/MANIFEST") packages in $dest, $(du -sh "$dest" | cut -f1) in total"
