#!/usr/bin/env bash
# Builds the libFuzzer harnesses of the file parsers (fuzz/, clang with AddressSanitizer and
# UndefinedBehaviorSanitizer) and runs each one for SECONDS (default 20) on one core, starting
# from its seed corpus fuzz/corpus/<harness>/ plus what earlier runs added in
# $FUZZ_BUILD_DIR/corpus/<harness>/.
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     harnesses: npy xyz pdb config openmm
#
# Exits non-zero when a harness finds a crash, a hang (> 5 s per input), more than 2 GiB of
# memory, a leak, a sanitizer report, or an exception other than mintjulep::Error; the input is
# saved under $FUZZ_BUILD_DIR/artifacts/<harness>/. Reproduce with
# `$FUZZ_BUILD_DIR/fuzz_<harness> FILE`. The harnesses link the rest of the library from a
# normal build in $BUILD_DIR (default build/), whose library is built first when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
harnesses=("$@")
[ "${#harnesses[@]}" -gt 0 ] || harnesses=(npy xyz pdb config openmm)
BUILD_DIR=${BUILD_DIR:-build}
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" --target mintjulep --parallel "$(nproc)"
if [ ! -f "$FUZZ_BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S fuzz -B "$FUZZ_BUILD_DIR" "${generator[@]}" -DCMAKE_CXX_COMPILER=clang++ \
    -DMINTJULEP_BUILD_DIR="$PWD/$BUILD_DIR"
fi
cmake --build "$FUZZ_BUILD_DIR" --parallel "$(nproc)"

export OMP_NUM_THREADS=1
# A fixed libFuzzer seed by default, so that a test run explores the same inputs every time (up
# to how many fit in the time box); FUZZ_SEED=random draws a new one per run, for longer hunts.
seed_flag=(-seed="${FUZZ_SEED:-1}")
[ "${FUZZ_SEED:-1}" = random ] && seed_flag=()
# The harnesses write each input to a file in $TMPDIR; keep those (left behind by a crash) here.
mkdir -p "$FUZZ_BUILD_DIR/tmp"
TMPDIR="$(cd "$FUZZ_BUILD_DIR/tmp" && pwd)"
export TMPDIR
failed=()
summary=()
for h in "${harnesses[@]}"; do
  corpus="$FUZZ_BUILD_DIR/corpus/$h"
  artifacts="$FUZZ_BUILD_DIR/artifacts/$h"
  log="$FUZZ_BUILD_DIR/fuzz_$h.log"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz: $h for ${seconds} s"
  status=0
  "$FUZZ_BUILD_DIR/fuzz_$h" "$corpus" "fuzz/corpus/$h" -max_total_time="$seconds" -timeout=5 "${seed_flag[@]}" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  time=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  entries=$(find "$corpus" -type f | wc -l)
  summary+=("$(printf '%-8s %10s inputs in %4s s, corpus %5s, %s' "$h" "${runs:-?}" "${time:-?}" \
    "$entries" "$([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)")")")
  if [ "$status" -ne 0 ]; then
    failed+=("$h")
    tail -n 60 "$log"
  fi
done
echo "fuzz summary:"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${failed[*]} failed; inputs in $FUZZ_BUILD_DIR/artifacts/, logs in $FUZZ_BUILD_DIR/fuzz_*.log"
  exit 1
fi
