#!/usr/bin/env bash
# kill -9 at several moments, then resume: `md` (its .npz checkpoint), `train` (the kernel
# training state), `train --stage mint` (the Mint training state), `sample` (finished chunks)
# and `bench` (finished cells) end with the result of an uninterrupted run,
# and the result files are never half-written (every file that exists under its final name
# loads). The kill times are fractions of the uninterrupted run's wall time (sample: counts of
# kept chunks), so they land inside the run on a fast or a slow machine alike.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"

now() { date +%s.%N; }
# kill_or_reap PID: SIGKILL PID if it is still running, then reap it. Prints "killed" or "finished".
kill_or_reap() {
  if kill -9 "$1" 2>/dev/null; then
    wait "$1" 2>/dev/null
    echo killed
  else
    wait "$1" 2>/dev/null
    echo finished
  fi
}
# run_killed SECONDS CMD...: starts CMD, kills it with SIGKILL after SECONDS (if still running).
# Prints "killed" or "finished".
run_killed() {
  local delay=$1; shift
  "$@" >"$work/killed.out" 2>&1 &
  local pid=$!
  sleep "$delay"
  kill_or_reap "$pid"
}
# run_killed_at_chunks N OUT CMD...: starts CMD, kills it with SIGKILL once OUT.partial holds at least
# N finished chunks (if still running). Prints "killed" or "finished". Waiting for a chunk count,
# not a time, puts each kill between two chunks on a fast or a slow machine alike.
run_killed_at_chunks() {
  local want=$1 out=$2; shift 2
  "$@" >"$work/killed.out" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local have
    have=$(find "$out.partial" -maxdepth 1 -name 'chunk-*.pt' 2>/dev/null | wc -l)
    [ "$have" -ge "$want" ] && break
    sleep 0.01
  done
  kill_or_reap "$pid"
}
# npz_loads FILE: a complete .npz (every member readable).
npz_loads() {
  "$py" -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None" "$1" 2>/dev/null
}

# ---- md: alanine dipeptide, a checkpoint every 2 frames --------------------------------------
md_args=(md --system ala2 --replicas 4 --steps 3000 --report-every 20 --checkpoint-every 2 --seed 5 --threads 1)
t0=$(now)
"$bin" "${md_args[@]}" --out "$work/md-ref.npz" >/dev/null 2>&1 || fail "md reference run"
md_time=$(awk -v a="$(now)" -v b="$t0" "BEGIN { print a - b }")
kills=0
for fraction in 0.25 0.25 0.25; do
  delay=$(awk -v t="$md_time" -v f="$fraction" "BEGIN { print t * f }")
  resume=()
  [ -f "$work/md.npz" ] && resume=(--resume)
  state=$(run_killed "$delay" "$bin" "${md_args[@]}" --out "$work/md.npz" "${resume[@]}")
  [ "$state" = killed ] && kills=$((kills + 1))
  if [ -f "$work/md.npz" ]; then npz_loads "$work/md.npz" || fail "md: md.npz half-written after a kill at ${fraction}"; fi
done
[ "$kills" -ge 2 ] || fail "md: only $kills of 3 kills landed inside the run"
resume=()
[ -f "$work/md.npz" ] && resume=(--resume)
"$bin" "${md_args[@]}" --out "$work/md.npz" "${resume[@]}" >"$work/md.out" 2>&1 || fail "md final resume: $(tail -1 "$work/md.out")"
"$py" - "$work/md-ref.npz" "$work/md.npz" <<'PY' || fail "md: the resumed run differs from the uninterrupted one"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
for key in ("positions", "energies", "steps"):
    assert np.array_equal(a[key], b[key]), key
PY
echo "md: $kills kills inside a ${md_time} s run, resumed to the uninterrupted result"

# ---- train: the kernel stage, its state saved every iteration ---------------------------------
cat >"$work/tiny.toml" <<'TOML'
system = "dw4"
[prior]
components = 4
[mint]
steps = 20
samples = 128
eval_samples = 500
[network]
hidden = 16
layers = 2
[julep]
steps = 10
eps = 0.05
[train]
iterations = 60
samples = 32
chunk_steps = 5
log_every = 10
checkpoint_every = 1
eval_samples = 200
TOML
t0=$(now)
"$bin" train "$work/tiny.toml" --out "$work/train-ref" --seed 2 --threads 1 >/dev/null 2>&1 || fail "train reference run"
train_time=$(awk -v a="$(now)" -v b="$t0" "BEGIN { print a - b }")
kills=0
for fraction in 0.3 0.25 0.25; do
  delay=$(awk -v t="$train_time" -v f="$fraction" "BEGIN { print t * f }")
  resume=()
  [ -f "$work/train/config.toml" ] && resume=(--resume)
  state=$(run_killed "$delay" "$bin" train "$work/tiny.toml" --out "$work/train" --seed 2 --threads 1 "${resume[@]}")
  [ "$state" = killed ] && kills=$((kills + 1))
  if [ -f "$work/train/metrics.json" ]; then
    "$py" -c "import json, sys; json.load(open(sys.argv[1]))" "$work/train/metrics.json" ||
      fail "train: metrics.json half-written after a kill at ${fraction}"
  fi
done
[ "$kills" -ge 2 ] || fail "train: only $kills of 3 kills landed inside the run"
"$bin" train "$work/tiny.toml" --out "$work/train" --seed 2 --threads 1 --resume >"$work/train.out" 2>&1 ||
  fail "train final resume: $(tail -1 "$work/train.out")"
cmp -s "$work/train-ref/sampler.pt" "$work/train/sampler.pt" || fail "train: the resumed kernel differs from the uninterrupted one"
cmp -s "$work/train-ref/prior.pt" "$work/train/prior.pt" || fail "train: the resumed prior differs from the uninterrupted one"
"$py" - "$work/train-ref/metrics.json" "$work/train/metrics.json" <<'PY' || fail "train: metrics differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for key in ("path_ess", "log_z", "prior_ess", "prior_log_z"):
    assert a[key] == b[key], (key, a[key], b[key])
PY
echo "train: $kills kills inside a ${train_time} s run, resumed to the uninterrupted result"

# ---- train --stage mint: the Mint state (walker pool, best-so-far, generator) every 10 steps ------
cat >"$work/mint.toml" <<'TOML'
system = "dw4"
[prior]
components = 4
[mint]
steps = 300
samples = 256
warmup_steps = 100
objective = "snis+langevin"
langevin_steps = 3
langevin_burn_in = 6
select_every = 50
select_samples = 300
checkpoint_every = 10
log_every = 50
eval_samples = 500
[anneal]
pilot = 100
TOML
mint_args=(train "$work/mint.toml" --stage mint --seed 3 --threads 1)
t0=$(now)
"$bin" "${mint_args[@]}" --out "$work/mint-ref" >/dev/null 2>&1 || fail "mint reference run"
mint_time=$(awk -v a="$(now)" -v b="$t0" "BEGIN { print a - b }")
kills=0
for fraction in 0.3 0.3 0.25; do
  delay=$(awk -v t="$mint_time" -v f="$fraction" "BEGIN { print t * f }")
  resume=()
  [ -f "$work/mint/config.toml" ] && resume=(--resume)
  state=$(run_killed "$delay" "$bin" "${mint_args[@]}" --out "$work/mint" "${resume[@]}")
  [ "$state" = killed ] && kills=$((kills + 1))
done
[ "$kills" -ge 2 ] || fail "mint: only $kills of 3 kills landed inside the run"
[ -f "$work/mint/mint_state.pt" ] || fail "mint: no training state after the kills"
# The saved state of another seed is refused in one line, and left as it is.
expect_error "mint state of another seed" "another seed" train "$work/mint.toml" --stage mint --seed 4 --threads 1 \
  --out "$work/mint" --resume
"$bin" "${mint_args[@]}" --out "$work/mint" --resume >"$work/mint.out" 2>&1 ||
  fail "mint final resume: $(tail -1 "$work/mint.out")"
grep -q "mint: resumed at step" "$work/mint.out" || fail "mint: the final run did not resume: $(head -3 "$work/mint.out")"
cmp -s "$work/mint-ref/prior.pt" "$work/mint/prior.pt" || fail "mint: the resumed prior differs from the uninterrupted one"
[ -f "$work/mint/mint_state.pt" ] && fail "mint: mint_state.pt left behind by a finished stage"
"$py" - "$work/mint-ref/metrics.json" "$work/mint/metrics.json" <<'PY' || fail "mint: metrics differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for key in ("prior_ess", "prior_log_z", "mint_steps", "mint_selected_step", "dropped_energies"):
    assert a[key] == b[key], (key, a[key], b[key])
PY
echo "mint: $kills kills inside a ${mint_time} s run, resumed to the uninterrupted result"

# ---- sample: smc-mala in 8 chunks (step sizes carried from chunk to chunk), kept chunk by chunk
sample_args=(sample "$work/mint-ref" --method smc-mala --steps 60 --num-samples 3200 --chunk 400 --seed 4 --threads 1)
t0=$(now)
"$bin" "${sample_args[@]}" --out "$work/sample-ref.npz" >/dev/null 2>&1 || fail "sample reference run"
sample_time=$(awk -v a="$(now)" -v b="$t0" "BEGIN { print a - b }")
kills=0
# Each rerun takes the chunks kept so far and goes on; it is killed once 2, 4 and 6 of the 8
# chunks are kept. The output is written once, at the end, and never half-written.
for chunks in 2 4 6; do
  state=$(run_killed_at_chunks "$chunks" "$work/sample.npz" "$bin" "${sample_args[@]}" --out "$work/sample.npz")
  if [ "$state" = killed ]; then
    kills=$((kills + 1))
    if [ -f "$work/sample.npz" ]; then
      npz_loads "$work/sample.npz" || fail "sample: sample.npz half-written after a kill at $chunks chunks"
    fi
  fi
done
[ "$kills" -ge 2 ] || fail "sample: only $kills of 3 kills landed inside the run"
if [ "$state" = killed ]; then
  ls "$work/sample.npz.partial"/chunk-*.pt >/dev/null 2>&1 || fail "sample: no finished chunk kept after the kills"
  "$bin" "${sample_args[@]}" --out "$work/sample.npz" >"$work/sample.out" 2>&1 ||
    fail "sample final run: $(tail -1 "$work/sample.out")"
  grep -q "finished chunks are taken from" "$work/sample.out" || fail "sample: the final run did not resume"
fi
[ -e "$work/sample.npz.partial" ] && fail "sample: the partial folder is left behind"
"$py" - "$work/sample-ref.npz" "$work/sample.npz" <<'PY' || fail "sample: the resumed draw differs from the uninterrupted one"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert sorted(a.files) == sorted(b.files), (a.files, b.files)
for key in a.files:
    assert np.array_equal(a[key], b[key]), key
PY
# Chunks kept for another command are deleted, never read (this one would not load).
mkdir -p "$work/other.npz.partial"
echo "method=mala" >"$work/other.npz.partial/key.txt"
echo "not a chunk" >"$work/other.npz.partial/chunk-000000.pt"
"$bin" sample "$work/mint-ref" --method prior --num-samples 300 --chunk 100 --threads 1 --out "$work/other.npz" \
  >"$work/other.out" 2>&1 || fail "sample after another command's chunks: $(tail -1 "$work/other.out")"
grep -q "deleted the finished chunks" "$work/other.out" || fail "sample: chunks of another command were not reported deleted"
echo "sample: $kills kills inside a ${sample_time} s run, resumed to the uninterrupted result"

# ---- bench: finished cells are kept, the grid completes -------------------------------------
bench_args=(bench --systems dw4 --methods prior,ais-mala --seeds 0,1 --config "dw4=$work/tiny.toml" --samples 500 --steps 5
            --mint-steps 10 --threads 1)
t0=$(now)
"$bin" "${bench_args[@]}" --out "$work/bench-ref" >/dev/null 2>&1 || fail "bench reference run"
bench_time=$(awk -v a="$(now)" -v b="$t0" "BEGIN { print a - b }")
for fraction in 0.3 0.6; do
  delay=$(awk -v t="$bench_time" -v f="$fraction" "BEGIN { print t * f }")
  run_killed "$delay" "$bin" "${bench_args[@]}" --out "$work/bench" >/dev/null
  for f in "$work"/bench/*/*/metrics.json "$work"/bench/*/metrics.json; do
    [ -f "$f" ] || continue
    "$py" -c "import json, sys; json.load(open(sys.argv[1]))" "$f" || fail "bench: $f half-written"
  done
done
"$bin" "${bench_args[@]}" --out "$work/bench" >"$work/bench.out" 2>&1 || fail "bench final run: $(tail -1 "$work/bench.out")"
"$py" - "$work/bench-ref/results.json" "$work/bench/results.json" <<'PY' || fail "bench: results differ from the uninterrupted grid"
import json, sys
def cells(path):
    data = json.load(open(path))
    rows = data["cells"] if isinstance(data, dict) else data
    return {(c["system"], c["method"], c["seed"]): (c.get("ess"), c.get("log_z")) for c in rows}
a, b = cells(sys.argv[1]), cells(sys.argv[2])
assert a == b, (a, b)
assert len(a) == 4, a
PY

finish "kill and resume"
