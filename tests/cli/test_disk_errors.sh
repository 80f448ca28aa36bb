#!/usr/bin/env bash
# A full disk, an output folder that is not writable and a read-only run folder: each command
# fails with exit 2 and one line naming the problem and its fix, leaves no temporary files, and
# leaves earlier results as they were (an interrupted md run resumes from its last checkpoint).
# The full disk is a file size limit (ulimit -f: writes fail with EFBIG, as with ENOSPC); the
# permission checks run as a process without the capabilities that let root write anywhere
# (setpriv), and are skipped with a message where permissions cannot be enforced.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"

# expect_write_error WHAT NEEDLE CMD...: like expect_error, for a command line of any form.
expect_write_error() {
  local what=$1 needle=$2; shift 2
  "$@" >"$work/expect.out" 2>"$work/expect.err"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "$what: exit code $rc, expected 2 ($(head -c 300 "$work/expect.err"))"
  [ "$(wc -l <"$work/expect.err")" -eq 1 ] || fail "$what: stderr is not one line: $(cat "$work/expect.err")"
  grep -qF -- "$needle" "$work/expect.err" || fail "$what: stderr lacks '$needle': $(cat "$work/expect.err")"
}
# not_writable WHAT PATH CMD...: CMD must fail with one line saying that PATH cannot be written
# and how to fix it.
not_writable() {
  local what=$1 path=$2; shift 2
  expect_write_error "$what" "write to another folder or make it writable" "$@"
  grep -qF -- "cannot write '$path'" "$work/expect.err" || fail "$what: stderr does not name '$path': $(cat "$work/expect.err")"
}
# no_temporaries DIR...: nothing left behind by a failed write.
no_temporaries() {
  local left
  left=$(find "$@" -name '*.tmp*')
  [ -z "$left" ] || fail "temporary files left behind: $left"
}
# limited KB CMD...: CMD with files limited to KB KiB.
limited() { local kb=$1; shift; (ulimit -f "$kb" && exec "$@"); }
sums() { (cd "$1" && md5sum $(find . -type f | sort)); }

cat >"$work/tiny.toml" <<'TOML'
system = "dw4"
[prior]
components = 2
[mint]
steps = 5
samples = 64
log_every = 5
eval_samples = 64
[network]
hidden = 8
layers = 1
[julep]
steps = 3
[train]
iterations = 1
samples = 8
eval_samples = 32
TOML
"$bin" train "$work/tiny.toml" --out "$work/run" --stage mint --seed 1 --threads 1 >"$work/train.out" 2>&1 ||
  fail "train exited $?: $(cat "$work/train.out")"
"$bin" sample "$work/run" --method prior --num-samples 200 --seed 1 --out "$work/s.npz" --threads 1 >/dev/null ||
  fail "sample"
cp "$work/s.npz" "$work/s.before"
cp -a "$work/run" "$work/run-mint"  # an unfinished run (Mint stage only), for the read-only checks
prior_before=$(md5sum <"$work/run/prior.pt")

# --- A full disk: a 1 KiB file size limit.
full="free disk space (or raise the file size limit, ulimit -f) or write to another disk (an earlier file of that name is unchanged)"
# The first write that fails is the first finished chunk, kept next to the output.
expect_write_error "sample on a full disk" "writing '$work/s.npz.partial/chunk-000000.pt' failed: File too large; $full" \
  limited 1 "$bin" sample "$work/run" --method prior --num-samples 200 --seed 2 --out "$work/s.npz" --threads 1
cmp -s "$work/s.npz" "$work/s.before" || fail "a failed sample changed the earlier s.npz"
# 60 samples: the .npz fits in 8 KiB, their PDB and XYZ copies do not.
for ext in pdb xyz; do
  expect_write_error "sample --trajectory t.$ext on a full disk" "writing '$work/t.$ext' failed: File too large" \
    limited 8 "$bin" sample "$work/run" --method prior --num-samples 60 --out "$work/t.npz" --trajectory "$work/t.$ext" --threads 1
  [ -s "$work/t.npz" ] || fail "the .npz before t.$ext was not written"
  [ -e "$work/t.$ext" ] && fail "a partial t.$ext was left"
done
# train: continuing the Mint-stage run as a full one, the kernel's checkpoints do not fit; the
# prior stays, and a resumed run without the limit finishes from it.
expect_write_error "train --resume on a full disk" "failed: File too large; $full" \
  limited 1 "$bin" train "$work/tiny.toml" --out "$work/run" --resume --seed 1 --threads 1
[ "$prior_before" = "$(md5sum <"$work/run/prior.pt")" ] || fail "a failed train changed prior.pt"
grep -q '"prior_ess"' "$work/run/metrics.json" || fail "a failed train lost metrics.json: $(cat "$work/run/metrics.json")"
"$bin" train "$work/tiny.toml" --out "$work/run" --resume --seed 1 --threads 1 >"$work/resume.out" 2>&1 ||
  fail "resume after the full disk exited $?: $(tail -3 "$work/resume.out")"
grep -q "mint: resumed" "$work/resume.out" || fail "the resumed run trained the prior again"
[ -s "$work/run/sampler.pt" ] || fail "the resumed run wrote no sampler.pt"
run_before=$(sums "$work/run")
# The Mint stage's training state is the first file it writes.
expect_write_error "train on a full disk" "writing '$work/run2/mint_state.pt' failed: File too large" \
  limited 1 "$bin" train "$work/tiny.toml" --out "$work/run2" --threads 1
# md: the checkpoints of the first frames fit, a later one does not; the file holds the last
# checkpoint that fitted, and --resume continues to the result of an uninterrupted run.
printf '4\n\nX 0 0 0\nX 4 0 0\nX 4 4 0\nX 0 4 0\n' >"$work/start.xyz"
md=(md --system dw4 --in "$work/start.xyz" --replicas 4 --report-every 10 --dt 0.005 --threads 1 --checkpoint-every 5)
"$bin" "${md[@]}" --steps 400 --out "$work/full.npz" >/dev/null || fail "md"
expect_write_error "md on a full disk" "writing '$work/md.npz' failed: File too large; $full" \
  limited 8 "$bin" "${md[@]}" --steps 400 --out "$work/md.npz"
out=$("$bin" "${md[@]}" --steps 400 --out "$work/md.npz" --resume 2>&1) || fail "md --resume after the full disk: $out"
step=$(sed -n 's/.*resuming .* at step \([0-9]*\) of 400.*/\1/p' <<<"$out")
[ -n "$step" ] && [ "$step" -gt 0 ] && [ "$step" -lt 400 ] || fail "md did not resume from a checkpoint: $out"
[ "$("$bin" energy --system dw4 --in "$work/md.npz")" = "$("$bin" energy --system dw4 --in "$work/full.npz")" ] ||
  fail "the resumed md run differs from the uninterrupted one"
# Printed results: standard output on a full device, one line of output and 200.
expect_write_error "energy to /dev/full" "writing the standard output failed: No space left on device" \
  bash -c '"$0" energy --system dw4 --in "$1" >/dev/full' "$bin" "$work/start.xyz"
expect_write_error "energies to /dev/full" "No space left on device" \
  bash -c '"$0" energy --system dw4 --in "$1" --forces >/dev/full' "$bin" "$work/s.npz"
no_temporaries "$work"

# --- Permissions.
mkdir "$work/probe" && chmod 555 "$work/probe"
as_user=()
if ! touch "$work/probe/x" 2>/dev/null; then
  as_user=(env)
elif command -v setpriv >/dev/null &&
     ! setpriv --bounding-set=-dac_override,-dac_read_search,-fowner touch "$work/probe/y" 2>/dev/null &&
     setpriv --bounding-set=-dac_override,-dac_read_search,-fowner true 2>/dev/null; then
  # root: without CAP_DAC_OVERRIDE (and the others that bypass file permissions) root obeys them.
  as_user=(setpriv --bounding-set=-dac_override,-dac_read_search,-fowner)
fi
if [ "${#as_user[@]}" -eq 0 ]; then
  echo "SKIP: file permissions are not enforced for this user (root without setpriv); permission checks skipped"
else
  mkdir "$work/ro" && chmod 555 "$work/ro"
  not_writable "sample into a read-only folder" "$work/ro/s.npz" \
    "${as_user[@]}" "$bin" sample "$work/run" --method prior --num-samples 20 --out "$work/ro/s.npz" --threads 1
  not_writable "sample --trajectory into a read-only folder" "$work/ro/s.dcd" \
    "${as_user[@]}" "$bin" sample "$work/run" --method prior --num-samples 20 --out "$work/s3.npz" --trajectory "$work/ro/s.dcd" --threads 1
  not_writable "md into a read-only folder" "$work/ro/md.npz" \
    "${as_user[@]}" "$bin" "${md[@]}" --steps 20 --out "$work/ro/md.npz"
  not_writable "energy --forces-out into a read-only folder" "$work/ro/f.npy" \
    "${as_user[@]}" "$bin" energy --system dw4 --in "$work/s.npz" --forces-out "$work/ro/f.npy"
  not_writable "metrics --json into a read-only folder" "$work/ro/m.json" \
    "${as_user[@]}" "$bin" metrics --reference "$work/full.npz" --json "$work/ro/m.json"
  expect_write_error "train into a read-only folder" "cannot create output folder '$work/ro/run': Permission denied; choose a folder you can write to" \
    "${as_user[@]}" "$bin" train "$work/tiny.toml" --out "$work/ro/run" --threads 1
  [ -z "$(ls -A "$work/ro")" ] || fail "files appeared in the read-only folder: $(ls -A "$work/ro")"
  # A read-only run folder: sampling from it works; training into it (fresh, which would replace
  # the earlier run, or resumed) fails before anything of the earlier run is removed.
  chmod -R a-w "$work/run" "$work/md.npz"
  "${as_user[@]}" "$bin" sample "$work/run" --num-samples 20 --out "$work/s4.npz" --threads 1 >/dev/null 2>&1 ||
    fail "sampling from a read-only run folder failed"
  not_writable "train into a read-only run folder" "$work/run/config.toml" \
    "${as_user[@]}" "$bin" train "$work/tiny.toml" --out "$work/run" --threads 1
  [ "$run_before" = "$(sums "$work/run")" ] || fail "a failed train changed the read-only run folder"
  chmod -R a-w "$work/run-mint"
  mint_before=$(sums "$work/run-mint")
  not_writable "train --resume into a read-only run folder" "$work/run-mint/config.toml" \
    "${as_user[@]}" "$bin" train "$work/tiny.toml" --out "$work/run-mint" --resume --seed 1 --threads 1
  [ "$mint_before" = "$(sums "$work/run-mint")" ] || fail "a failed train --resume changed the read-only run folder"
  # A read-only results file in a writable folder is replaced like any other (rename).
  cp "$work/md.npz" "$work/md.before"
  chmod a-w "$work"
  not_writable "md --resume in a read-only folder" "$work/md.npz" \
    "${as_user[@]}" "$bin" "${md[@]}" --steps 800 --out "$work/md.npz" --resume
  chmod u+w "$work"
  cmp -s "$work/md.npz" "$work/md.before" || fail "a failed md --resume changed md.npz"
  no_temporaries "$work"
fi
finish "disk errors"
