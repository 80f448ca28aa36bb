#!/usr/bin/env bash
# End-to-end checks of `mintjulep energy`: printed values, forces, and that bad input gives
# exit code 2 with one line on stderr naming the problem.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"


printf '2\ndimer at rm\nAr 0 0 0\nAr 0 0 1\n2\ndimer at sigma\nAr 0 0 0\nAr 0.8908987181403393 0 0\n' >"$work/dimer.xyz"
out=$("$bin" energy --system lj:2:3 --in "$work/dimer.xyz") || fail "dimer: non-zero exit"
[ "$(echo "$out" | sed -n 1p)" = "-1" ] || fail "dimer at rm: got '$(echo "$out" | sed -n 1p)', expected -1"
awk 'NR==2 { if ($1 > 1e-12 || $1 < -1e-12) exit 1 }' <<<"$out" || fail "dimer at sigma: not 0: $out"

printf '4\nsquare of side 4\nA 0 0 0\nA 4 0 0\nA 4 4 0\nA 0 4 0\n' >"$work/square.xyz"
out=$("$bin" energy --system dw4 --in "$work/square.xyz")
awk '{ d = $1 + 8.396642530754047; if (d > 1e-12 || d < -1e-12) exit 1 }' <<<"$out" || fail "dw4 square: $out"

# Forces: dimer at r = 1.2 along z; F_z on particle 1 = -dV/dr = -(-12 r^-13 + 12 r^-7).
printf '2\n\nAr 0 0 0\nAr 0 0 1.2\n' >"$work/stretched.xyz"
out=$("$bin" energy --system lj:2:3 --in "$work/stretched.xyz" --forces --forces-out "$work/f.npy")
[ "$(echo "$out" | wc -w)" -eq 7 ] || fail "forces: expected energy + 6 components, got '$out'"
awk '{ r = 1.2; f = 12 * r^-13 - 12 * r^-7; d = $7 - f; e = $4 + f;
       if (d > 1e-12 || d < -1e-12 || e > 1e-12 || e < -1e-12) exit 1 }' <<<"$out" || fail "forces: $out"
[ -s "$work/f.npy" ] || fail "forces: --forces-out wrote nothing"
out_t=$("$bin" energy --system lj:2:3 --in "$work/dimer.xyz" --t 0.5 | head -1)
awk -v v="$out_t" 'BEGIN { d = v + 1.5^-12; if (d > 1e-15 || d < -1e-15) exit 1 }' || fail "t=0.5 well depth: $out_t"

# Bad input.
expect_error "unknown system" "unknown system 'lj14'" energy --system lj14 --in "$work/dimer.xyz"
expect_error "missing file" "cannot open" energy --system lj:2:3 --in "$work/none.xyz"
expect_error "wrong shape" "needs (B, 13, 3)" energy --system lj13 --in "$work/dimer.xyz"
printf '2\n\nAr 0 0 0\nAr 0 nan 1\n' >"$work/nan.xyz"
expect_error "non-finite" "NaN or infinite" energy --system lj:2:3 --in "$work/nan.xyz"
printf 'garbage' >"$work/bad.npy"
expect_error "not npy" "not a numpy .npy file" energy --system lj:2:3 --in "$work/bad.npy"
expect_error "unknown type" "unknown file type" energy --system lj:2:3 --in "$work/dimer.txt"
expect_error "t out of range" "outside [0, 1]" energy --system lj:2:3 --in "$work/dimer.xyz" --t 2
printf "4\n\nA 0 0 0\nA 4 0 0\nA 4 4 1\nA 0 4 0\n" >"$work/tilted.xyz"
expect_error "z not zero" "z column is not 0" energy --system dw4 --in "$work/tilted.xyz"
expect_error "bad device" "device" --device tpu energy --system lj:2:3 --in "$work/dimer.xyz"
expect_error "missing option" "--system" energy --in "$work/dimer.xyz"

finish "cli energy"
