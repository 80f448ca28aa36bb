#!/usr/bin/env bash
# End-to-end check of the exact annealing (DESIGN.md §4b): `train` with an [anneal] section and
# no kernel training reports the separately named quantities, `sample --method` gives weighted
# samples from a prior-only run, and bad [anneal] values exit 2 with one line.
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
eval_samples = 300
[network]
hidden = 8
layers = 1
[julep]
steps = 5
eps = 0.05
[train]
iterations = 0
eval_samples = 300
[anneal]
method = "smc-mala"
steps = 6
moves = 2
pilot = 50
chunk = 150
resample_threshold = 0.7
TOML
"$bin" train "$work/tiny.toml" --out "$work/run" --seed 1 --threads 1 >"$work/out" 2>&1 || fail "train exited $?: $(cat "$work/out")"
grep -q "anneal smc-mala (T = 6, 2 moves per temperature): SMC final ESS" "$work/out" || fail "no anneal summary: $(cat "$work/out")"
python3 - "$work/run/metrics.json" <<'PY' || fail "metrics.json anneal block: $(cat "$work/run/metrics.json")"
import json, math, sys
m = json.load(open(sys.argv[1]))
a = m["anneal"]
assert a["method"] == "smc-mala" and a["steps"] == 6 and a["num_samples"] == 300, a
assert "smc_final_ess" in a and "path_ess" not in a, a
assert math.isfinite(a["log_z"]) and a["resampling_events"] >= 0, a
assert len(a["acceptance"]) == 6 and len(a["step_sizes"]) == 6, a
# No kernel training: the run's own numbers are the annealing's, under the same names; SMC's
# final ESS is not a path ESS, so no path_ess is reported for it.
for key in ("ais_path_ess", "ais_log_z", "log_z", "smc_final_ess", "resampling_events"):
    assert key in m, key
assert "path_ess" not in m and m["log_z"] == a["log_z"], m
PY

# A prior-only run sampled with MALA-AIS and SMC: no kernel checkpoint needed.
"$bin" train "$work/tiny.toml" --out "$work/mint" --stage mint --threads 1 >/dev/null 2>&1 || fail "mint stage exited $?"
[ -e "$work/mint/sampler.pt" ] && fail "mint stage wrote a kernel"
"$bin" sample "$work/mint" --method mala --steps 4 --num-samples 200 --out "$work/m.npz" --threads 1 >"$work/out2" 2>&1 || fail "sample --method mala exited $?: $(cat "$work/out2")"
grep -q "anneal mala (T = 4, 2 moves per temperature): path ESS" "$work/out2" || fail "no MALA summary: $(cat "$work/out2")"
grep -q "200 samples, path ESS" "$work/out2" || fail "sample did not report the path ESS"
[ -s "$work/m.npz" ] || fail "no npz written"
"$bin" sample "$work/mint" --method smc-mala --num-samples 200 --chunk 100 --out "$work/s.npz" --threads 1 >"$work/out3" 2>&1 || fail "sample --method smc-mala exited $?: $(cat "$work/out3")"
grep -q "200 samples, SMC final ESS" "$work/out3" || fail "sample did not report SMC's final ESS: $(cat "$work/out3")"
"$bin" sample "$work/mint" --method ula --num-samples 50 --out "$work/u.npz" --threads 1 >"$work/out4" 2>&1 || fail "sample --method ula exited $?: $(cat "$work/out4")"
grep -q "path ESS" "$work/out4" || fail "ula did not report the path ESS"
"$bin" sample "$work/mint" --method mala --steps 4 --leapfrog 3 --schedule-power 2 --num-samples 100 --out "$work/h.npz" \
  --threads 1 >"$work/out5" 2>&1 || fail "sample --leapfrog exited $?: $(cat "$work/out5")"
grep -q "anneal mala (T = 4, 2 HMC moves of 3 leapfrog steps per temperature): path ESS" "$work/out5" ||
  fail "no HMC summary: $(cat "$work/out5")"
expect_error "no leapfrog steps" "--leapfrog: Value 0 not in range 1 to 1000" sample "$work/mint" --method mala \
  --leapfrog 0 --out "$work/x.npz" --threads 1
"$bin" sample "$work/mint" --method mala --steps 4 --independence 2 --path geometric --num-samples 100 \
  --out "$work/i.npz" --threads 1 >"$work/out6" 2>&1 || fail "sample --independence exited $?: $(cat "$work/out6")"
grep -q "2 independence moves per temperature (acceptance 0\.[0-9]*)" "$work/out6" ||
  fail "no independence-move summary: $(cat "$work/out6")"
expect_error "bad path" "--path: straight not in {soft,geometric}" sample "$work/mint" --method mala --path straight \
  --out "$work/x.npz" --threads 1
sed 's/moves = 2/moves = 2\nschedule_power = 0.0/' "$work/tiny.toml" >"$work/bad5.toml"
expect_error "bad schedule" "schedule_power must be positive" train "$work/bad5.toml" --out "$work/bad"
expect_error "julep without a kernel" "sampler.pt" sample "$work/mint" --method julep --out "$work/x.npz" --threads 1
expect_error "unknown method" "--method must be prior or an annealing method, got 'hmc'" sample "$work/mint" --method hmc --out "$work/x.npz" --threads 1

# Reverse annealing from exact samples (the DW-4 reference md run, every frame).
ref="$(cd "$(dirname "$0")/../../data" && pwd)/dw4-reference.npz"
"$bin" sample "$work/mint" --method mala --steps 4 --pilot 50 --num-samples 200 --reverse-from "$ref" \
  --out "$work/r.npz" --threads 1 >"$work/out7" 2>&1 || fail "sample --reverse-from exited $?: $(cat "$work/out7")"
grep -q "reverse MALA annealing from 200 exact samples of .* (T = 4): log Z [0-9.]* +- [0-9.]*" "$work/out7" ||
  fail "no reverse summary: $(cat "$work/out7")"
py=${PYTHON3:-python3}
"$py" -c "import numpy" 2>/dev/null || py=/usr/bin/python3  # Debian's python3-numpy
"$py" - "$work/r.npz" <<'PY' || fail "reverse weights file"
import sys, numpy as np
d = np.load(sys.argv[1])
lw = d["log_w_reverse"]
assert lw.shape == (200,) and np.isfinite(lw).all(), lw.shape
m = lw.max()
assert abs(d["log_z_reverse"][0] + (m + np.log(np.exp(lw - m).mean()))) < 1e-9, d["log_z_reverse"]
assert d["final_positions"].shape == (200, 4, 2)
PY
expect_error "reverse from a missing file" "--reverse-from: file '$work/none.npz' not found" sample "$work/mint" \
  --method mala --reverse-from "$work/none.npz" --out "$work/x.npz" --threads 1
expect_error "reverse with SMC" "reverse annealing needs --method mala, not 'smc-mala'" sample "$work/mint" \
  --method smc-mala --reverse-from "$ref" --out "$work/x.npz" --threads 1
expect_error "reverse from too few" "ask for at most" sample "$work/mint" --method mala --num-samples 100000000 \
  --reverse-from "$ref" --out "$work/x.npz" --threads 1

# Bad [anneal] values.
sed 's/method = "smc-mala"/method = "smc"/' "$work/tiny.toml" >"$work/bad1.toml"
expect_error "bad method" "[anneal] annealing method 'smc' is unknown" train "$work/bad1.toml" --out "$work/bad"
sed 's/resample_threshold = 0.7/resample_threshold = 1.5/' "$work/tiny.toml" >"$work/bad2.toml"
expect_error "bad threshold" "resample_threshold must be in [0, 1]" train "$work/bad2.toml" --out "$work/bad"
sed 's/moves = 2/moves = 2\nmove = 1/' "$work/tiny.toml" >"$work/bad3.toml"
expect_error "unknown key" "unknown key 'move' in [anneal]" train "$work/bad3.toml" --out "$work/bad"
sed 's/moves = 2/moves = 0/' "$work/tiny.toml" >"$work/bad4.toml"
expect_error "no moves" "moves per temperature must be >= 1" train "$work/bad4.toml" --out "$work/bad"
finish test_anneal_command
