#!/usr/bin/env bash
# Installs dependencies, builds, runs the whole test suite with ctest, then the unit tests built
# with AddressSanitizer + UndefinedBehaviorSanitizer (scripts/sanitize.sh; SANITIZE=0 skips
# them) and each fuzz harness of the file parsers for 20 seconds (scripts/fuzz.sh;
# FUZZ_SECONDS=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stages=()
# timed NAME: records how long the stage since the last call took (printed at the end).
last=$start
timed() { local now; now=$(date +%s); stages+=("$1 $((now - last)) s"); last=$now; }
report() {
  local joined
  joined=$(printf '%s, ' "${stages[@]}")
  echo "run-tests: ${joined}$(( $(date +%s) - start )) s in all"
}
trap report EXIT
bash scripts/install-deps.sh
timed "dependencies"
bash scripts/build.sh
timed "build"
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 1200 -j "$(nproc)")
timed "ctest"
if [ -d "${BUILD_DIR:-build}/python" ]; then
  echo "the Python module: export PYTHONPATH=$(cd "${BUILD_DIR:-build}" && pwd)/python"
fi
if [ "${SANITIZE:-1}" != 0 ]; then
  bash scripts/sanitize.sh
  timed "sanitizers"
fi
if [ "${FUZZ_SECONDS:-20}" -gt 0 ]; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
  timed "fuzzing"
fi
