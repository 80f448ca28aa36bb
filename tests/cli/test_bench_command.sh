#!/usr/bin/env bash
# End-to-end check of `mintjulep bench` on a tiny DW-4 grid (2 methods x 2 seeds, tiny budgets):
# the cell folders, results.json and results.md, that an interrupted grid run again reuses its
# finished cells and trainings, a bench file, and one-line errors for bad input.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"

cat >"$work/tiny.toml" <<'TOML'
system = "dw4"
[prior]
components = 4
[mint]
steps = 20
samples = 128
log_every = 10
[network]
hidden = 8
layers = 1
[julep]
steps = 5
eps = 0.05
[train]
iterations = 2
samples = 8
log_every = 1
[anneal]
method = "mala"
pilot = 50
chunk = 100
TOML
grid=(bench --systems dw4 --methods ais-mala,julep --seeds 0,1 --config "dw4=$work/tiny.toml" --samples 200
      --steps 4 --iterations 2 --out "$work/b" --threads 1)

# A first run, killed once its first cell is done (or finished already: then everything is reused).
"$bin" "${grid[@]}" >"$work/run1.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q "^\[1/4\] dw4 ais-mala seed 0: done" "$work/run1.out" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
grep -q "^bench: 4 cells (1 systems x 2 methods x 2 seeds), budget small, 1 threads, device cpu" "$work/run1.out" ||
  fail "no grid line: $(cat "$work/run1.out")"
grep -q "^\[1/4\] dw4 ais-mala seed 0: start; 0 s elapsed" "$work/run1.out" || fail "no start line: $(cat "$work/run1.out")"
grep -q "^\[1/4\] dw4 ais-mala seed 0: training the Mint prior into" "$work/run1.out" || fail "no training line"

# Run again: the finished cell is reused, the others are computed.
"$bin" "${grid[@]}" >"$work/run2.out" 2>&1 || fail "second run exited $?: $(cat "$work/run2.out")"
grep -q "^\[1/4\] dw4 ais-mala seed 0: reused (finished earlier), ESS" "$work/run2.out" ||
  fail "the finished cell was not reused: $(cat "$work/run2.out")"
grep -qE "^\[4/4\] dw4 julep seed 1: done in [0-9.]+ s, ESS [0-9.]+% of 200, log Z" "$work/run2.out" ||
  fail "no done line for the last cell: $(cat "$work/run2.out")"
grep -qE "^bench: 4 cells, [0-9] computed, [1-9] reused, 0 failed in" "$work/run2.out" || fail "summary: $(cat "$work/run2.out")"

for cell in dw4-ais-mala-s0 dw4-ais-mala-s1 dw4-julep-s0 dw4-julep-s1; do
  for f in metrics.json samples.npz run/config.toml run/metrics.json sample.log; do
    [ -s "$work/b/$cell/$f" ] || fail "$cell/$f missing"
  done
done
[ -s "$work/b/dw4-ais-mala-s0/run/prior.pt" ] || fail "the ais-mala cell's run folder has no prior"
[ -s "$work/b/dw4-julep-s0/run/sampler.pt" ] || fail "the julep cell's run folder has no kernel"
[ -s "$work/b/train/dw4-s0/mint/train.log" ] || fail "no training log"
grep -qE "^system = ['\"]dw4['\"]" "$work/b/dw4-julep-s1/run/config.toml" || fail "config copy: $(cat "$work/b/dw4-julep-s1/run/config.toml")"
grep -q '^seed = 1' "$work/b/dw4-julep-s1/run/config.toml" || fail "the config copy lacks the seed"

python3 - "$work/b" <<'PY' || fail "results.json / results.md: $(cat "$work/b/results.md")"
import json, math, sys
out = sys.argv[1]
r = json.load(open(out + "/results.json"))
assert r["budget"] == "small" and r["methods"] == ["ais-mala", "julep"] and r["seeds"] == [0, 1], r
m = r["machine"]
assert m["threads"] == 1 and m["device"] == "cpu" and m["cores"] >= 1 and m["libtorch"], m
s = r["systems"][0]
assert s["name"] == "dw4" and s["samples"] == 200 and s["steps"] == 4 and s["iterations"] == 2 and s["reduced"], s
assert s["reference"].endswith("dw4-reference.npz"), s
cells = r["cells"]
assert len(cells) == 4, cells
assert [(c["method"], c["seed"]) for c in cells] == [("ais-mala", 0), ("ais-mala", 1), ("julep", 0), ("julep", 1)]
for c in cells:
    assert c["status"] == "done" and c["system"] == "dw4" and c["num_samples"] == 200, c
    assert 0 < c["ess"] <= 1 and abs(c["effective_count"] - 200 * c["ess"]) < 1e-6, c
    assert math.isfinite(c["log_z"]) and c["log_z_se"] >= 0, c
    for key in ("energy_w1", "energy_w2", "distance_w2"):
        assert c[key] is not None and c[key] >= 0, (key, c)
    assert c["energy_w2"] >= c["energy_w1"] - 1e-12, c
    assert c["steps"] == 4 and c["smc"] is False and c["ess_kind"] == "path", c
    assert c["device"] == "cpu" and c["threads"] == 1, c
    assert c["train_seconds"] > 0 and c["sample_seconds"] > 0 and c["wall_seconds"] >= c["train_seconds"], c
    # The cell's own metrics.json holds the same numbers.
    own = json.load(open(c["folder"] + "/metrics.json"))
    assert own["ess"] == c["ess"] and own["log_z"] == c["log_z"], (own, c)
md = open(out + "/results.md").read()
assert "reduced: 200 samples (the paper: 100000)" in md, md
assert "1 threads, device cpu" in md and "4 cells: 4 done, 0 failed, 0 pending" in md, md
rows = [l for l in md.splitlines() if l.startswith("| dw4 |")]
assert len(rows) == 2 and rows[0].startswith("| dw4 | ais-mala | 2/2 | 200 | ") and rows[1].startswith("| dw4 | julep | 2/2 | 200 | "), rows
ess = [100 * c["ess"] for c in cells[:2]]
mean = sum(ess) / 2
sd = math.sqrt(sum((e - mean) ** 2 for e in ess))  # n - 1 = 1
assert f"| {mean:.2f} +- {sd:.2f} |" in rows[0], (rows[0], mean, sd)
PY

# A third run reuses everything and trains nothing.
cp "$work/b/dw4-julep-s1/metrics.json" "$work/before.json"
start=$(date +%s%N)
"$bin" "${grid[@]}" >"$work/run3.out" 2>&1 || fail "third run exited $?: $(cat "$work/run3.out")"
[ "$(grep -c 'reused (finished earlier)' "$work/run3.out")" -eq 4 ] || fail "not every cell reused: $(cat "$work/run3.out")"
grep -q "training the" "$work/run3.out" && fail "the third run trained again: $(cat "$work/run3.out")"
grep -q "^bench: 4 cells, 0 computed, 4 reused, 0 failed" "$work/run3.out" || fail "summary: $(cat "$work/run3.out")"
cmp -s "$work/before.json" "$work/b/dw4-julep-s1/metrics.json" || fail "a reused cell was rewritten"
echo "third run (all reused): $(( ($(date +%s%N) - start) / 1000000 )) ms"

# A changed budget is not the same cell: 150 samples recompute the cells but reuse the training.
"$bin" bench --systems dw4 --methods ais-mala --seeds 0 --config "dw4=$work/tiny.toml" --samples 150 --steps 4 \
  --iterations 2 --out "$work/b" --threads 1 >"$work/run4.out" 2>&1 || fail "changed budget exited $?"
grep -q "^bench: 1 cells, 1 computed, 0 reused" "$work/run4.out" || fail "changed budget reused a cell: $(cat "$work/run4.out")"
grep -q "training the" "$work/run4.out" && fail "a changed sample count trained again: $(cat "$work/run4.out")"

# A bench file; the command line's options win over it.
cat >"$work/bench.toml" <<'TOML'
[bench]
systems = ["dw4"]
methods = ["prior", "smc-mala"]
seeds = [3]
samples = 120
keep_samples = false
[bench.dw4]
config = "tiny.toml"
steps = 3
TOML
"$bin" bench "$work/bench.toml" --methods prior --out "$work/f" --threads 1 >"$work/file.out" 2>&1 ||
  fail "bench file run exited $?: $(cat "$work/file.out")"
grep -q "^bench: 1 cells (1 systems x 1 methods x 1 seeds)" "$work/file.out" || fail "bench file grid: $(cat "$work/file.out")"
[ -e "$work/f/dw4-prior-s3/samples.npz" ] && fail "keep_samples = false wrote samples"
python3 - "$work/f/results.json" <<'PY' || fail "bench file results: $(cat "$work/f/results.json")"
import json, sys
r = json.load(open(sys.argv[1]))
c = r["cells"][0]
assert c["method"] == "prior" and c["seed"] == 3 and c["num_samples"] == 120 and c["steps"] is None, c
assert c["ess_kind"] == "prior" and r["systems"][0]["steps"] == 3, r
PY

# The baselines and ablations of DESIGN.md section 5: each trains its own kernel on a modified
# copy of the config (isotropic prior, additive kernel, its loss); mint-additive reuses the
# system's Mint stage.
"$bin" bench --systems dw4 --methods pis,dds,gauss-julep,mint-additive --seeds 0 --config "dw4=$work/tiny.toml" \
  --samples 100 --steps 4 --iterations 2 --out "$work/v" --threads 1 >"$work/variants.out" 2>&1 ||
  fail "baselines grid exited $?: $(cat "$work/variants.out")"
grep -q "^bench: 4 cells, 4 computed, 0 reused, 0 failed" "$work/variants.out" || fail "baselines: $(cat "$work/variants.out")"
python3 - "$work/v" <<'PY' || fail "baselines results: $(cat "$work/v/results.md")"
import json, math, sys, tomllib
out = sys.argv[1]
def config(variant):
    return tomllib.load(open(f"{out}/train/dw4-s0/{variant}/config.toml", "rb"))
for variant, objective in (("pis", "reverse_kl"), ("dds", "log_variance")):
    c = config(variant)
    assert c["prior"] == {"family": "isotropic", "components": 1, "scale": c["prior"]["scale"]}, c["prior"]
    assert c["julep"]["use_a"] is False and c["train"]["objective"] == objective and c["mint"]["steps"] == 0, c
    assert "anneal" not in c, c
assert abs(config("pis")["prior"]["scale"] - 0.5 * config("dds")["prior"]["scale"]) < 1e-12
g, a = config("gauss"), config("additive")
assert g["prior"]["family"] == "isotropic" and g["julep"].get("use_a", True) is True, g
assert a["prior"] == tomllib.load(open(f"{out}/train/dw4-s0/config.toml", "rb"))["prior"] and a["julep"]["use_a"] is False, a
import os
assert not os.path.exists(f"{out}/train/dw4-s0/additive/mint") and os.path.exists(f"{out}/train/dw4-s0/mint/prior.pt")
r = json.load(open(out + "/results.json"))
assert [c["method"] for c in r["cells"]] == ["pis", "dds", "gauss-julep", "mint-additive"], r["cells"]
for c in r["cells"]:
    assert c["status"] == "done" and c["ess_kind"] == "path" and c["steps"] == 4 and math.isfinite(c["log_z"]), c
    assert os.path.exists(c["folder"] + "/run/sampler.pt"), c
    family = json.load(open(c["folder"] + "/run/metrics.json"))["prior_family"]
    assert family == ("independent" if c["method"] == "mint-additive" else "isotropic"), (c["method"], family)
md = open(out + "/results.md").read()
assert "| dw4 | pis | 1/1 | 100 |" in md and "| dw4 | dds | 1/1 | 100 |" in md, md
PY

# --jobs 2: the same grid computed by two worker processes (one per seed) gives the numbers of
# one process; then --kernel-samples and --kernel-steps give the kernel cells their own budget
# (a changed config: every cell of the grid is computed again, the ais-mala ones to the same numbers).
pgrid=(bench --systems dw4 --methods ais-mala,julep --seeds 0,1 --config "dw4=$work/tiny.toml" --samples 200
       --steps 4 --iterations 2 --out "$work/p" --threads 1 --jobs 2)
"$bin" "${pgrid[@]}" >"$work/jobs.out" 2>&1 || fail "--jobs 2 exited $?: $(cat "$work/jobs.out")"
grep -q "^bench: worker dw4:1 started" "$work/jobs.out" && grep -q "^  dw4:1> \[2/2\] dw4 julep seed 1: done in" "$work/jobs.out" ||
  fail "no worker lines: $(cat "$work/jobs.out")"
grep -q "^bench: 4 cells, 4 computed, 0 reused, 0 failed" "$work/jobs.out" || fail "--jobs summary: $(cat "$work/jobs.out")"
"$bin" "${pgrid[@]}" --kernel-samples 50 --kernel-steps 3 >"$work/jobs2.out" 2>&1 ||
  fail "--kernel-samples exited $?: $(cat "$work/jobs2.out")"
grep -q "^bench: 4 cells, 4 computed, 0 reused, 0 failed" "$work/jobs2.out" || fail "kernel budget: $(cat "$work/jobs2.out")"
python3 - "$work/b" "$work/p" <<'PY' || fail "--jobs results: $(cat "$work/p/results.md")"
import json, sys
one, jobs = sys.argv[1], sys.argv[2]
r = json.load(open(jobs + "/results.json"))
assert r["jobs"] == 2 and r["systems"][0]["kernel_samples"] == 50 and r["systems"][0]["kernel_steps"] == 3, r["systems"]
cells = {(c["method"], c["seed"]): c for c in r["cells"]}
for seed in (0, 1):
    a = cells[("ais-mala", seed)]
    assert a["status"] == "done" and not a["reused"] and a["num_samples"] == 200 and a["steps"] == 4, a
    k = cells[("julep", seed)]
    assert k["status"] == "done" and not k["reused"] and k["num_samples"] == 50 and k["steps"] == 3, k
# seed 1's ais-mala cell in the one-process grid b is still the 200-sample one: the same numbers.
b = json.load(open(one + "/dw4-ais-mala-s1/metrics.json"))
assert b["ess"] == cells[("ais-mala", 1)]["ess"] and b["log_z"] == cells[("ais-mala", 1)]["log_z"], (b, cells)
md = open(jobs + "/results.md").read()
assert "in each of 2 processes at once (--jobs)" in md and "kernel cells 50 samples and T = 3" in md, md
assert "| dw4 | julep | 2/2 | 50 |" in md and "| dw4 | ais-mala | 2/2 | 200 |" in md, md
PY

# Two grid runs into one folder: the second is refused in one line while the first runs.
"$bin" bench --systems dw4 --methods ais-mala --seeds 5 --config "dw4=$work/tiny.toml" --samples 4000 --steps 20 \
  --out "$work/l" --threads 1 >"$work/lock1.out" 2>&1 &
pid=$!
for _ in $(seq 1 300); do [ -e "$work/l/.bench.lock" ] && break; sleep 0.05; done
if kill -0 "$pid" 2>/dev/null; then
  expect_error "a second bench in one folder" "another mintjulep bench is running in '$work/l'" \
    bench --systems dw4 --methods prior --seeds 5 --config "dw4=$work/tiny.toml" --out "$work/l"
fi
wait "$pid" || fail "the first bench exited $?: $(cat "$work/lock1.out")"

# A cell that fails is recorded and the grid goes on; the command then exits 1 with one line.
mkdir -p "$work/g" && touch "$work/g/dw4-prior-s1"  # a file where the cell's folder should be
"$bin" bench --systems dw4 --methods prior --seeds 0,1 --config "dw4=$work/tiny.toml" --samples 100 --out "$work/g" \
  --threads 1 >"$work/fail.out" 2>"$work/fail.err"
rc=$?
[ "$rc" -eq 1 ] || fail "a failed cell: exit code $rc, expected 1"
[ "$(wc -l <"$work/fail.err")" -eq 1 ] && grep -q "1 of 2 bench cells failed" "$work/fail.err" ||
  fail "a failed cell: stderr $(cat "$work/fail.err")"
grep -q "^\[2/2\] dw4 prior seed 1: failed: " "$work/fail.out" || fail "no failed line: $(cat "$work/fail.out")"
python3 - "$work/g" <<'PY' || fail "failed cell results: $(cat "$work/g/results.md")"
import json, sys
r = json.load(open(sys.argv[1] + "/results.json"))
assert [c["status"] for c in r["cells"]] == ["done", "failed"] and r["cells"][1]["error"], r["cells"]
md = open(sys.argv[1] + "/results.md").read()
assert "1 done, 1 failed, 0 pending" in md and "- dw4 prior seed 1: " in md and "| dw4 | prior | 1/2 | 100 |" in md, md
PY

# Bad input: one line, exit 2, no output folder.
expect_error "unknown method" "unknown bench method 'hmc'; use prior, ais-ula, ais-mala, smc-mala, julep, smc-julep" \
  bench --methods ais-mala,hmc --systems dw4 --out "$work/x"
expect_error "unknown system" "bench system: unknown system 'dw5'; known systems:" bench --systems dw5 --out "$work/x"
expect_error "unknown budget" "unknown budget 'huge'; use small" bench --systems dw4 --budget huge --out "$work/x"
expect_error "negative seed" "bench seed -1 is negative" bench --systems dw4 --seeds 0,-1 --out "$work/x"
expect_error "repeated seed" "bench seed 1 is listed twice" bench --systems dw4 --seeds 1,1 --out "$work/x"
expect_error "no config" "no config for bench system 'dw:5:2': 'nowhere/dw:5:2.toml' not found" \
  bench --systems dw:5:2 --configs nowhere --out "$work/x"
expect_error "bad --config" "--config 'dw4' must look like SYSTEM=FILE" bench --config dw4 --out "$work/x"
expect_error "few samples" "bench system dw4: samples must be >= 2, got 1" \
  bench --systems dw4 --config "dw4=$work/tiny.toml" --samples 1 --out "$work/x"
expect_error "few kernel samples" "bench system dw4: kernel_samples must be >= 2, got 1" \
  bench --systems dw4 --config "dw4=$work/tiny.toml" --kernel-samples 1 --out "$work/x"
expect_error "no jobs" "--jobs must be >= 1, got 0" bench --systems dw4 --config "dw4=$work/tiny.toml" --jobs 0 --out "$work/x"
printf '[bench]\nsystem = ["dw4"]\n' >"$work/bad.toml"
expect_error "unknown bench key" "unknown key 'system' in [bench]" bench "$work/bad.toml" --out "$work/x"
printf '[bench]\n[bench.dw5]\nsamples = 10\n' >"$work/bad2.toml"
expect_error "unknown system table" "[bench.dw5]: unknown system 'dw5'" bench "$work/bad2.toml" --out "$work/x"
[ -e "$work/x" ] && fail "bad input created the output folder"
finish test_bench_command
