#!/usr/bin/env bash
# End-to-end checks of the trajectory outputs of `mintjulep sample` and `mintjulep md` (PDB,
# DCD, extended XYZ next to the .npz), of `sample --resample`, and one-line errors for bad
# output paths and resample counts.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"

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
TOML
"$bin" train "$work/tiny.toml" --out "$work/run" --stage mint --seed 1 --threads 1 >"$work/train.out" 2>&1 ||
  fail "train exited $?: $(cat "$work/train.out")"

# --out s.pdb also writes s.npz; every file holds all 200 samples.
out=$("$bin" sample "$work/run" --method prior --num-samples 200 --seed 2 --out "$work/s.pdb" \
  --trajectory "$work/s.dcd" --trajectory "$work/s.xyz" --threads 1) || fail "sample to pdb: $out"
grep -qF "wrote $work/s.npz, $work/s.pdb, $work/s.dcd and $work/s.xyz" <<<"$out" || fail "wrote line: $out"
[ "$(grep -c '^MODEL' "$work/s.pdb")" -eq 200 ] || fail "s.pdb should hold 200 models"
[ "$(grep -c '^REMARK   1 sample=.* log_w=.* energy=' "$work/s.pdb")" -eq 200 ] || fail "s.pdb remarks"
[ "$(grep -c '^Properties=species:S:1:pos:R:3 pbc="F F F" sample=.* log_w=.* energy=' "$work/s.xyz")" -eq 200 ] ||
  fail "s.xyz comment lines"
ls "$work"/*.tmp* >/dev/null 2>&1 && fail "temporary files left behind: $(ls "$work")"
# The energies of the configurations read back from each file agree with the .npz.
"$bin" energy --system dw4 --in "$work/s.npz" >"$work/e.npz.txt" || fail "energy of s.npz"
for f in s.pdb s.dcd s.xyz; do
  "$bin" energy --system dw4 --in "$work/$f" >"$work/e.$f.txt" || fail "energy of $f"
  # PDB keeps 3 decimals; DCD float32; XYZ 10 decimals.
  case $f in *.pdb) tol=1e-2 ;; *) tol=1e-5 ;; esac
  paste "$work/e.npz.txt" "$work/e.$f.txt" | awk -v f="$f" -v tol="$tol" '
    { d = $1 - $2; if (d < 0) d = -d; if (d > tol * (100 + ($1 < 0 ? -$1 : $1))) { print f ": " $0; bad = 1 } }
    END { if (NR != 200) { print f ": " NR " lines"; bad = 1 } exit bad }' || fail "energies read back from $f"
done

# Resampling: N equally weighted samples, the ESS they came from, the same choice for the same seed.
out=$("$bin" sample "$work/run" --method prior --num-samples 200 --seed 2 --resample 50 --out "$work/r.npz" \
  --trajectory "$work/r.pdb" --threads 1) || fail "resample: $out"
grep -qE "^resampled 50 from 200 weighted samples, ESS [0-9.]+% \([0-9]+\)$" <<<"$out" || fail "resample line: $out"
[ "$("$bin" energy --system dw4 --in "$work/r.pdb" | wc -l)" -eq 50 ] || fail "r.pdb should hold 50 samples"
cp "$work/r.pdb" "$work/r1.pdb"
"$bin" sample "$work/run" --method prior --num-samples 200 --seed 2 --resample 50 --out "$work/r.pdb" --threads 1 \
  >/dev/null || fail "resample again"
cmp -s "$work/r.pdb" "$work/r1.pdb" || fail "resampling with the same seed differs"

# md: --trajectory files hold every frame of every replica.
printf '4\n\nX 0 0 0\nX 4 0 0\nX 4 4 0\nX 0 4 0\n' >"$work/start.xyz"
out=$("$bin" md --system dw4 --in "$work/start.xyz" --replicas 3 --steps 40 --report-every 10 --dt 0.001 \
  --out "$work/md.npz" --trajectory "$work/md.dcd" --trajectory "$work/md.xyz" --threads 1) || fail "md: $out"
grep -qF "wrote $work/md.npz, $work/md.dcd and $work/md.xyz (4 frames x 3 replicas)" <<<"$out" || fail "md wrote: $out"
[ "$("$bin" energy --system dw4 --in "$work/md.dcd" | wc -l)" -eq 12 ] || fail "md.dcd should hold 12 frames"
[ "$(grep -c 'replica=2 step=40 time=0.04 energy=' "$work/md.xyz")" -eq 1 ] || fail "md.xyz labels"

expect_error "unknown extension" "unknown output file type '.trr'" sample "$work/run" --method prior --out "$work/s.trr"
expect_error "no extension" "use .npz, .pdb, .dcd or .xyz" sample "$work/run" --method prior --out "$work/samples"
expect_error "npz as trajectory" "the .npz is --out" sample "$work/run" --out "$work/a.npz" --trajectory "$work/b.npz"
expect_error "same file twice" "named twice" sample "$work/run" --out "$work/a.pdb" --trajectory "$work/a.pdb"
expect_error "resample 0" "--resample must be >= 1, got 0" sample "$work/run" --method prior --resample 0 --out "$work/z.npz"
expect_error "resample negative" "--resample must be >= 1, got -5" sample "$work/run" --method prior --resample -5 --out "$work/z.npz"
expect_error "missing folder" "folder '$work/no/such' does not exist" sample "$work/run" --method prior --out "$work/no/such/s.npz"
mkdir "$work/folder.pdb"
expect_error "folder as file" "it is a folder" sample "$work/run" --method prior --out "$work/folder.pdb"
expect_error "md unknown extension" "unknown output file type '.txt'" md --system ala2 --out "$work/md.txt"
expect_error "md missing folder" "does not exist" md --system ala2 --out "$work/md.npz" --trajectory "$work/none/md.pdb"
[ -e "$work/z.npz" ] && fail "a failed run wrote z.npz"
finish "trajectory outputs"
