#!/usr/bin/env bash
# Installs dependencies, builds, runs the whole test suite with ctest, then the unit tests built
# with AddressSanitizer + UndefinedBehaviorSanitizer (scripts/sanitize.sh; SANITIZE=0 skips
# them) and each fuzz harness of the file parsers for 20 seconds (scripts/fuzz.sh;
# FUZZ_SECONDS=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 1200 -j "$(nproc)")
if [ -d "${BUILD_DIR:-build}/python" ]; then
  echo "the Python module: export PYTHONPATH=$(cd "${BUILD_DIR:-build}" && pwd)/python"
fi
if [ "${SANITIZE:-1}" != 0 ]; then
  bash scripts/sanitize.sh
fi
if [ "${FUZZ_SECONDS:-20}" -gt 0 ]; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
