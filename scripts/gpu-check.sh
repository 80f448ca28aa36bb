#!/usr/bin/env bash
# The CUDA check, in one go, on a GPU machine without network (see docs/CUDA.md): builds with
# scripts/build-cuda.sh, runs the device-parametrised tests, then times DW-4 training and
# sampling on cuda and on the CPU (2 threads) and alanine dipeptide on cuda, on reduced
# configs. Every stage has a time limit and a failed stage does not stop the next; the whole
# script keeps within GPU_CHECK_BUDGET seconds (default 450). Run from the repository root:
#   OUT=/some/folder bash scripts/gpu-check.sh
# Writes to $OUT: build.log, tests.log, runs.log, timing.log, metrics.json, summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the logs}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
budget=${GPU_CHECK_BUDGET:-450}
# shellcheck source=scripts/gpu-stages.sh
source scripts/gpu-stages.sh
stages_begin gpu-check
echo "[]" >"$OUT/metrics.json"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)' 2>&1 | tee -a "$summary"

# ---- build (GPU_CHECK_SKIP_BUILD=1: use the binaries already in BUILD_DIR)
if [ "${GPU_CHECK_SKIP_BUILD:-0}" = 1 ]; then
  log "build skipped: using $bin"
elif ! stage build 330 "$OUT/build.log" env BUILD_DIR="$bin" JOBS="$(nproc)" KEEP_GOING=1 bash scripts/build-cuda.sh; then
  { echo "--- last lines of build.log"; grep -E "error|Error|FAILED" "$OUT/build.log" | head -20; tail -30 "$OUT/build.log"; } >>"$summary"
fi
if [ ! -x "$bin/mintjulep" ]; then
  log "no binary: nothing else to run"
  rm -rf "$work"
  exit 1
fi
# shellcheck disable=SC1091
[ -f "$bin/env.sh" ] && source "$bin/env.sh"
"$bin/mintjulep" --help >/dev/null 2>&1 || log "WARNING: $bin/mintjulep does not start (libraries?)"

# ---- device-parametrised tests (cpu and cuda instances), then the rest of the unit tests
if [ -x "$bin/tests/mintjulep_tests" ]; then
  stage "tests Devices/*" 120 "$OUT/tests.log" "$bin/tests/mintjulep_tests" --gtest_filter='Devices/*' --gtest_color=no
  grep -E '^\[  PASSED  \]|^\[  SKIPPED \] [0-9]+ test|^\[  FAILED  \]' "$OUT/tests.log" | sort -u | head -20 >>"$summary"
else
  log "FAIL  tests: $bin/tests/mintjulep_tests was not built"
fi

# ---- timed runs on reduced configs
sed -e 's/^steps = 800$/steps = 100/' -e 's/^warmup_steps = 500$/warmup_steps = 50/' \
    -e 's/^iterations = 200$/iterations = 10/' -e 's/^warmup_iterations = 20$/warmup_iterations = 2/' \
    -e 's/^eval_samples = 10000$/eval_samples = 2000/' -e 's/^log_every = 20$/log_every = 2/' \
    configs/dw4.toml >"$work/dw4.toml"
sed -e 's/^steps = 300$/steps = 50/' -e 's/^log_every = 50$/log_every = 10/' \
    -e 's/^iterations = 40$/iterations = 5/' -e 's/^warmup_iterations = 5$/warmup_iterations = 1/' \
    -e 's/^eval_samples = 5000$/eval_samples = 1000/' -e 's/^eval_samples = 2000$/eval_samples = 1000/' \
    -e 's/^log_every = 5$/log_every = 1/' configs/ala2.toml >"$work/ala2.toml"
{ echo "--- reduced configs"; diff configs/dw4.toml "$work/dw4.toml"; diff configs/ala2.toml "$work/ala2.toml"; } >>"$timing"
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -v)

# run NAME CONFIG DEVICE_OPTIONS...: train then sample 2000, timed.
run() {
  local name=$1 config=$2; shift 2
  stage "train $name" "${TRAIN_LIMIT:-110}" "$runs" "${timer[@]}" "$bin/mintjulep" train "$config" --out "$work/$name" --seed 1 "$@" &&
    stage "sample $name" 40 "$runs" "${timer[@]}" "$bin/mintjulep" sample "$work/$name" --num-samples 2000 \
      --out "$work/$name/samples.npz" --seed 2 "$@"
  if [ -f "$work/$name/metrics.json" ]; then
    python3 - "$name" "$work/$name/metrics.json" "$OUT/metrics.json" >>"$summary" <<'PY'
import json, sys
name, path, out = sys.argv[1:]
m = json.load(open(path))
runs = json.load(open(out))
m["run"] = name
runs.append(m)
json.dump(runs, open(out, "w"), indent=1)
keys = ["device", "threads", "prior_ess", "ais_path_ess", "path_ess", "log_z", "mint_seconds",
        "ais_sample_seconds", "julep_seconds", "sample_seconds", "train_seconds"]
print(f"      {name}: " + ", ".join(f"{k} {m[k]:.4g}" if isinstance(m.get(k), float) else f"{k} {m.get(k)}" for k in keys if k in m))
PY
  fi
}
run dw4-cuda "$work/dw4.toml" --device cuda
run ala2-cuda "$work/ala2.toml" --device cuda
run dw4-cpu "$work/dw4.toml" --device cpu --threads 2
# Exact MALA annealing of LJ-55 (no network: prior-only run folders), 1000 chains at once,
# 200 temperatures x 5 moves, on cuda and on the CPU with 2 threads.
anneal() {
  local name=$1; shift
  stage "anneal $name" 150 "$runs" "${timer[@]}" bash -c '"$0" train configs/lj55-half.toml --stage mint --out "$1" --seed 1 "${@:2}" >/dev/null &&
    "$0" sample "$1" --method mala --steps 200 --num-samples 1000 --chunk 1000 --pilot 0 --seed 2 --out "$1/samples.npz" "${@:2}"' \
    "$bin/mintjulep" "$work/$name" "$@"
}
anneal lj55-mala-cuda --device cuda
anneal lj55-mala-cpu --device cpu --threads 2
grep -E "Elapsed \(wall|Maximum resident|^=== " "$runs" >>"$timing" 2>/dev/null

log "total $(( $(date +%s) - start )) s of a ${budget} s budget"
cat "$timing" >>"$summary"
rm -rf "$work"
