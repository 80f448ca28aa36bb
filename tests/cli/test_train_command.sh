#!/usr/bin/env bash
# End-to-end check of `mintjulep train --stage mint` on a tiny budget: the run folder holds
# metrics.json with the documented keys, a loadable checkpoint and the config; bad input
# exits 2 with one line.
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
eval_samples = 500
[network]
hidden = 8
layers = 1
[julep]
steps = 5
eps = 0.05
[train]
iterations = 3
samples = 16
chunk_steps = 2
log_every = 1
eval_samples = 200
TOML
"$bin" train "$work/tiny.toml" --out "$work/run" --seed 3 --threads 1 >"$work/out" 2>&1 || fail "train exited $?: $(cat "$work/out")"
grep -q "mint step" "$work/out" || fail "no progress lines"
for key in system prior_ess prior_log_z num_samples train_seconds device threads seed; do
  grep -q "\"$key\"" "$work/run/metrics.json" || fail "metrics.json lacks $key"
done
grep -q '"seed": 3' "$work/run/metrics.json" || fail "--seed not recorded"
grep -q '"num_samples": 200' "$work/run/metrics.json" || fail "path eval_samples not used"
grep -q '"prior_num_samples": 500' "$work/run/metrics.json" || fail "mint eval_samples not used"
for key in path_ess log_z ais_path_ess sample_seconds; do
  grep -q "\"$key\"" "$work/run/metrics.json" || fail "metrics.json lacks $key"
done
grep -q "julep iter" "$work/out" || fail "no julep progress lines"
[ -s "$work/run/prior.pt" ] || fail "no prior checkpoint"
[ -s "$work/run/sampler.pt" ] || fail "no sampler checkpoint"
[ -s "$work/run/config.toml" ] || fail "no config copy"
ls "$work/run" | grep -q tmp && fail "temporary files left behind"

# The julep stage alone, from the trained prior, and sampling from the result.
"$bin" train "$work/tiny.toml" --out "$work/run2" --stage julep --from "$work/run" --threads 1 >"$work/out2" 2>&1 || fail "julep stage exited $?: $(cat "$work/out2")"
grep -q "loaded the prior" "$work/out2" || fail "julep stage did not load the prior"
"$bin" sample "$work/run2" --num-samples 50 --chunk 20 --out "$work/s.npz" --threads 1 >"$work/out3" 2>&1 || fail "sample exited $?: $(cat "$work/out3")"
[ -s "$work/s.npz" ] || fail "no npz written"
for name in positions.npy log_w.npy energies.npy; do
  unzip -l "$work/s.npz" 2>/dev/null | grep -q "$name" || python3 -c "import zipfile,sys; sys.exit('$name' not in zipfile.ZipFile('$work/s.npz').namelist())" || fail "npz lacks $name"
done
grep -q "path ESS" "$work/out3" || fail "sample did not report the ESS"

# Only the mint stage.
"$bin" train "$work/tiny.toml" --out "$work/run3" --stage mint --threads 1 >"$work/out4" 2>&1 || fail "mint stage exited $?"
grep -q "path_ess" "$work/run3/metrics.json" && fail "mint stage reports a path ESS"

# --resume on a folder whose Mint stage finished: the prior is reused, not retrained.
before=$(md5sum <"$work/run3/prior.pt")
"$bin" train "$work/tiny.toml" --out "$work/run3" --resume --threads 1 >"$work/out5" 2>&1 || fail "resume exited $?: $(cat "$work/out5")"
grep -q "mint: resumed" "$work/out5" || fail "resume retrained the prior"
grep -q "mint step" "$work/out5" && fail "resume ran Mint steps"
[ "$before" = "$(md5sum <"$work/run3/prior.pt")" ] || fail "resume rewrote prior.pt"
grep -q '"path_ess"' "$work/run3/metrics.json" || fail "resumed run lacks path_ess"
grep -q '"mint_seconds"' "$work/run3/metrics.json" || fail "resumed run lost mint_seconds"
[ -e "$work/run3/julep_state.pt" ] && fail "training state left behind after a finished run"
"$bin" train "$work/tiny.toml" --out "$work/run3" --resume --threads 1 >"$work/out6" 2>&1 || fail "resuming a finished run exited $?"
grep -q "nothing to resume" "$work/out6" || fail "a finished run was trained again: $(cat "$work/out6")"
expect_error "other stage" "was run with --stage all" train "$work/tiny.toml" --out "$work/run3" --resume --stage mint
# A damaged training state and a changed config are refused with one line.
"$bin" train "$work/tiny.toml" --out "$work/run4" --stage mint --threads 1 >/dev/null 2>&1 || fail "mint stage exited $?"
echo garbage >"$work/run4/julep_state.pt"
expect_error "damaged state" "cannot resume from the training state" train "$work/tiny.toml" --out "$work/run4" --resume --threads 1
sed 's/iterations = 3/iterations = 4/' "$work/tiny.toml" >"$work/tiny4.toml"
expect_error "changed config" "differs from the config this run started with" train "$work/tiny4.toml" --out "$work/run4" --resume

printf 'system = "dw5"\n' >"$work/unknown.toml"
expect_error "unknown system" "unknown system 'dw5'" train "$work/unknown.toml" --out "$work/r2"
printf 'system = "dw4"\nsamples = 3\n' >"$work/typo.toml"
expect_error "unknown key" "unknown key 'samples'" train "$work/typo.toml" --out "$work/r3"
expect_error "missing config" "does not exist" train "$work/none.toml" --out "$work/r4"
expect_error "bad stage" "--stage must be" train "$work/tiny.toml" --out "$work/r5" --stage kernel
expect_error "julep without prior" "--stage julep needs --from" train "$work/tiny.toml" --out "$work/r6" --stage julep
expect_error "missing checkpoint" "not found" train "$work/tiny.toml" --out "$work/r7" --stage julep --from "$work/r3"
expect_error "sample without run" "not found" sample "$work/none" --out "$work/x.npz"

finish "cli train"
