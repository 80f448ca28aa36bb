#!/usr/bin/env bash
# End-to-end checks of `mintjulep md` and `mintjulep ramachandran` on alanine dipeptide:
# outputs, exact resume, analysis files, and one-line errors for bad input.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"

# The PDB structure: the energy command reads PDB files (Angstrom -> nm).
e=$("$bin" energy --system ala2 --in "$(dirname "$0")/../../data/alanine-dipeptide/ala2.pdb") || fail "ala2 energy"
awk -v v="$e" 'BEGIN { if (v > -22.18 || v < -22.20) exit 1 }' || fail "ala2 PDB energy $e, expected -22.187 kT"

# 40 steps in one go versus 20 + 20 with --resume: identical final frames.
"$bin" md --system ala2 --replicas 3 --steps 40 --report-every 10 --out "$work/full.npz" --threads 1 >/dev/null || fail "md full"
"$bin" md --system ala2 --replicas 3 --steps 20 --report-every 10 --out "$work/part.npz" --threads 1 >/dev/null || fail "md part"
out=$("$bin" md --system ala2 --replicas 3 --steps 40 --report-every 10 --out "$work/part.npz" --resume --threads 1) || fail "md resume"
grep -q "resuming .* at step 20 of 40" <<<"$out" || fail "resume message: $out"
a=$("$bin" energy --system ala2 --in "$work/full.npz" | md5sum)
b=$("$bin" energy --system ala2 --in "$work/part.npz" | md5sum)
[ "$a" = "$b" ] || fail "resumed run differs from the uninterrupted one"
[ "$("$bin" energy --system ala2 --in "$work/full.npz" | wc -l)" -eq 3 ] || fail "last frame should hold 3 replicas"

out=$("$bin" ramachandran --in "$work/full.npz" --reference "$work/part.npz" --png "$work/r.png" --json "$work/r.json") || fail "ramachandran: $out"
grep -q "12 trajectory" <<<"$out" || fail "expected 4 frames x 3 replicas: $out"
grep -q "Jensen-Shannon divergence (60x60 bins, natural log): 0.0000" <<<"$out" || fail "JS of identical runs: $out"
[ "$(head -c 4 "$work/r.png" | tail -c 3)" = "PNG" ] || fail "not a PNG"
grep -q '"l_fraction": 1' "$work/r.json" || fail "json: $(cat "$work/r.json")"

expect_error "md without structure" "give starting positions with --in" md --system lj13 --out "$work/x.npz"
expect_error "resume mismatch" "resume with the same settings" md --system ala2 --replicas 3 --steps 60 --dt 0.001 --report-every 10 --out "$work/part.npz" --resume
expect_error "bad dt" "time step must be positive" md --system ala2 --dt -1 --out "$work/y.npz"
expect_error "not a molecule" "not a molecule" ramachandran --system dw4 --in "$work/full.npz"
expect_error "missing npz" "cannot open" ramachandran --in "$work/none.npz"
expect_error "temperature for lj" "only to molecular systems" energy --system lj13 --temperature 300 --in "$work/full.npz"
printf '<System/>' >"$work/bad.xml"
expect_error "bad system xml" "OpenMM System" energy --system "openmm:$work/bad.xml:$(dirname "$0")/../../data/alanine-dipeptide/ala2.pdb" --in "$work/full.npz"
finish "md command"
