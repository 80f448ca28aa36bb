#!/usr/bin/env bash
# scripts/make-figures.sh end to end: tiny runs (--smoke) make both figures, which must be valid
# PNG files (signature, chunk CRCs, image data inflating to the stated size) of the expected
# dimensions; the same figures again from the files those runs wrote, without the binary (the
# run folder's prior.pt read by scripts/figure-data.py); and one error. Skips (exit 77) without
# gnuplot or Debian's python3 with numpy.
set -u
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
src=$(cd "$(dirname "$0")/../.." && pwd)
command -v gnuplot >/dev/null || { echo "gnuplot not found (Debian gnuplot-nox): skipped"; exit 77; }
/usr/bin/python3 -c 'import numpy' 2>/dev/null || { echo "/usr/bin/python3 has no numpy: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$src/tests/cli/common.sh"

# check_png FILE WIDTH HEIGHT
check_png() {
  /usr/bin/python3 - "$@" <<'PY' || fail "$1 is not a valid ${2}x${3} PNG"
import struct, sys, zlib
path, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "signature"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], kind
    if kind == b"IHDR": ihdr = struct.unpack(">IIBB", body[:10])
    if kind == b"IDAT": idat += body
    pos += 12 + n
    if kind == b"IEND": break
w, h, depth, colour = ihdr
assert (w, h) == (width, height), (w, h)
channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
assert len(zlib.decompress(idat)) == h * (1 + w * channels * depth // 8), "image data size"
assert len(data) < 300_000, f"{len(data)} bytes"
PY
}

MINTJULEP=$bin bash "$src/scripts/make-figures.sh" --smoke --out "$work/fig" --work "$work/runs" \
  >"$work/smoke.log" 2>&1 || fail "make-figures.sh --smoke failed: $(tail -5 "$work/smoke.log")"
check_png "$work/fig/dw4.png" 1400 620
check_png "$work/fig/ala2.png" 1680 640

r=$work/runs
MINTJULEP=/nonexistent bash "$src/scripts/make-figures.sh" --out "$work/again" --work "$work/unused" \
  --dw4-run "$r/dw4-run" --dw4-prior "$r/dw4-prior.npz" --dw4-samples "$r/dw4-mala.npz" \
  --ala2-reference "$r/ala2-md.npz" --ala2-burn-in 2 --ala2-prior "$r/ala2-prior.npz" \
  --ala2-samples "$r/ala2-mala.npz" --ala2-label "it's given" >"$work/again.log" 2>&1 \
  || fail "make-figures.sh from given files failed: $(tail -5 "$work/again.log")"
check_png "$work/again/dw4.png" 1400 620
check_png "$work/again/ala2.png" 1680 640
grep -q "mintjulep" "$work/again.log" && fail "given every input, the script ran mintjulep: $(cat "$work/again.log")"

bash "$src/scripts/make-figures.sh" --out "$work/x" --dw4-prior "$work/missing.npz" >"$work/err.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "a missing input: exit code $rc, expected 2"
grep -q "cannot read '$work/missing.npz'" "$work/err.log" || fail "a missing input: $(cat "$work/err.log")"

finish make_figures
