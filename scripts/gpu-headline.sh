#!/usr/bin/env bash
# Headline sample counts on a GPU (1e5 samples per seed, which 2 CPU cores take hours for):
# draws from prior-only run folders (`mintjulep train CONFIG --stage mint --out runs/NAME`,
# made beforehand on any machine) with `--device cuda`, within one time budget. Run from the
# repository root after scripts/fetch-cuda-deps.sh (or with a build in BUILD_DIR):
#   OUT=/some/folder bash scripts/gpu-headline.sh JOB...
# A JOB is RUN:METHOD:SEEDS[:EXTRA], e.g. runs/ala2-mint:mala:1,2,3 or
# runs/lj13-half-mint:mala:0:n=10000:--steps=100 (after the third colon, colon-separated: n=COUNT
# samples instead of GPU_HEADLINE_SAMPLES, and options of `sample`), or train:CONFIG:RUN, which
# makes a prior-only run folder here (`train CONFIG --stage mint --seed 0`); jobs run in the order given and each seed is one
# time-limited stage, so a spent budget leaves the finished ones. Writes to $OUT: summary.txt
# (ESS, log Z and wall time per seed), runs.log, timing.log, build.log and, for alanine
# dipeptide, the per-basin weights of scripts/ala2-weights.py (weights.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the logs}"
[ $# -gt 0 ] || { echo "usage: OUT=DIR bash scripts/gpu-headline.sh RUN:METHOD:SEEDS[:EXTRA]..." >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
budget=${GPU_HEADLINE_BUDGET:-540}
samples=${GPU_HEADLINE_SAMPLES:-100000}
device=${GPU_HEADLINE_DEVICE:-cuda}   # cpu: a dry run of this script on any machine
# shellcheck source=scripts/gpu-stages.sh
source scripts/gpu-stages.sh
stages_begin gpu-headline "$samples samples per seed"
if [ ! -x "$bin/mintjulep" ]; then
  stage build 330 "$OUT/build.log" env BUILD_DIR="$bin" JOBS="$(nproc)" KEEP_GOING=1 \
    MINTJULEP_BUILD_TESTS=OFF bash scripts/build-cuda.sh
fi
[ -x "$bin/mintjulep" ] || { log "no binary: nothing to run"; tail -30 "$OUT/build.log" >>"$summary"; exit 1; }
# shellcheck disable=SC1091
[ -f "$bin/env.sh" ] && source "$bin/env.sh"

for job in "$@"; do
  # train:CONFIG:RUN: a prior-only run folder made here (`train CONFIG --stage mint`, seed 0).
  if [[ $job == train:* ]]; then
    IFS=: read -r _ config run <<<"$job"
    before=$(wc -l <"$runs")
    stage "train $(basename "$run")" "${GPU_HEADLINE_TRAIN_LIMIT:-300}" "$runs" "$bin/mintjulep" train "$config" --stage mint \
      --out "$run" --seed 0 --device "$device"
    result=$(tail -n +"$((before + 1))" "$runs" | grep -E "^mint: prior ESS" | tail -1)
    log "      $(basename "$run"): ${result:-no result}"
    continue
  fi
  IFS=: read -r run method seeds extra <<<"$job"
  [ -f "$run/config.toml" ] || { log "SKIP  $job: $run/config.toml not found"; continue; }
  name=$(basename "$run")-$method
  count=$samples
  options=()
  for word in ${extra//:/ }; do
    if [[ $word == n=* ]]; then count=${word#n=}; else options+=("$word"); fi
  done
  # Runs of one folder and method with other options get their own file names.
  [ ${#options[@]} -gt 0 ] && name=$name$(printf '_%s' "${options[@]#--}" | tr -cs 'A-Za-z0-9.=_-' '_')
  for seed in ${seeds//,/ }; do
    # alanine dipeptide: 1e4 chains at once (about 3 MB each); the clusters: all at once.
    chunk=$count
    grep -q '^system = "ala2' "$run/config.toml" && [ "$chunk" -gt 10000 ] && chunk=10000
    npz=$work/$name-s$seed.npz
    before=$(wc -l <"$runs")
    stage "$name seed $seed" 400 "$runs" "$bin/mintjulep" sample "$run" --method "$method" \
      --num-samples "$count" --chunk "$chunk" --seed "$seed" --device "$device" \
      --out "$npz" "${options[@]}"
    result=$(tail -n +"$((before + 1))" "$runs" | grep -E "^[0-9]+ samples, " | tail -1)
    log "      $name seed $seed: ${result:-no result}"
    left=$(limit 300)
    if [ -f "$npz" ] && [ "$left" -gt 5 ] && grep -q '^system = "ala2' "$run/config.toml"; then
      timeout "$left" python3 scripts/ala2-weights.py "$npz" 5 >"$work/weights-$name-s$seed.txt" 2>&1 &
    fi
  done
done
wait
for f in "$work"/weights-*.txt; do [ -e "$f" ] && { echo "== $(basename "$f" .txt)"; cat "$f"; }; done >"$OUT/weights.txt"
log "total $(( $(date +%s) - start )) s of a ${budget} s budget"
cat "$timing" >>"$summary"
rm -rf "$work"
