#!/usr/bin/env bash
# End-to-end checks of `mintjulep metrics` on a short DW-4 md reference and small weighted
# sample files written here (Python standard library only): the printed table and JSON
# against values computed independently, and one-line errors for bad input.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"
head -n 6 "$(dirname "$0")/../../examples/dw4.xyz" >"$work/start.xyz"  # its first frame, a square

# A short reference: 8 replicas x 60 frames; md reports the energy autocorrelation.
out=$("$bin" md --system dw4 --in "$work/start.xyz" --replicas 8 --steps 600 --dt 0.01 --report-every 10 \
  --burn-in 10 --out "$work/ref.npz" --threads 1) || fail "md: $out"
grep -q "energy autocorrelation over frames 10..59: tau .* frames (.* steps), effective size" <<<"$out" ||
  fail "md autocorrelation report: $out"
out=$("$bin" md --system dw4 --in "$work/start.xyz" --replicas 8 --steps 600 --dt 0.01 --report-every 10 \
  --seed 1 --out "$work/other.npz" --threads 1) || fail "md other: $out"

# The reference alone: its size and autocorrelation.
out=$("$bin" metrics --reference "$work/ref.npz" --burn-in 10 --json "$work/ref.json") || fail "metrics reference: $out"
grep -q "50 frames x 8 replicas after 10 burn-in frames (400 configurations)" <<<"$out" || fail "reference line: $out"
grep -q "reference energy autocorrelation: tau" <<<"$out" || fail "reference tau: $out"

# The reference against itself: every distance is exactly 0, ESS 100 %, log Z 0 +- 0 (to rounding).
out=$("$bin" metrics --in "$work/ref.npz" --reference "$work/ref.npz" --json "$work/self.json") || fail "self: $out"
python3 - "$work/self.json" <<'PY' || fail "self json: $(cat "$work/self.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["energy_w1"] == 0 and m["energy_w2"] == 0 and m["distance_w2"] == 0, m
assert abs(m["ess"] - 1) < 1e-12 and m["num_samples"] == 480 and abs(m["log_z"]) < 1e-12 and m["log_z_se"] < 1e-6, m
PY
# Two independent md runs: small but non-zero distances.
out=$("$bin" metrics --in "$work/other.npz" --reference "$work/ref.npz" --burn-in 10) || fail "other: $out"
grep -qE "energy W1 +[0-9.]+(e-?[0-9]+)? kT" <<<"$out" || fail "table: $out"
grep -q "samples .*other.npz: 400 md configurations (equal weights)" <<<"$out" || fail "--burn-in applies to an md --in: $out"
# --in-burn-in: its own burn-in for an md --in; the reference keeps --burn-in (0 here).
"$bin" metrics --in "$work/other.npz" --in-burn-in 5 --reference "$work/ref.npz" --json "$work/o.json" >/dev/null ||
  fail "--in-burn-in"
python3 - "$work/o.json" <<'PY' || fail "--in-burn-in json: $(cat "$work/o.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["num_samples"] == 440 and m["in_burn_in"] == 5 and m["reference_configurations"] == 480 and m["burn_in"] == 0, m
PY

# Weighted samples: the reference's last frame (8 configurations) with chosen log weights, one of
# them -inf (weight 0), with and without energies. ESS and log Z are checked against the same
# formulas evaluated here; the energy W1 with energies shifted by a constant c must be c when
# the sample is the reference itself.
python3 - "$work" <<'PY' || fail "writing npz files"
import math, struct, sys, zipfile
work = sys.argv[1]

def read_npz(path):  # float64 C-order arrays only, as mintjulep writes them
    out = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            b = z.read(name)
            hl = struct.unpack("<H", b[8:10])[0]
            header = b[10:10 + hl].decode()
            shape = tuple(int(s) for s in header.split("(")[1].split(")")[0].split(",") if s.strip())
            if "<f8" not in header:
                continue
            n = math.prod(shape)
            out[name[:-4]] = (shape, list(struct.unpack("<%dd" % n, b[10 + hl:10 + hl + 8 * n])))
    return out

def npy(shape, values):
    dims = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (%s), }" % dims
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack("<%dd" % len(values), *values)

def write_npz(path, arrays):
    with zipfile.ZipFile(path, "w") as z:
        for name, (shape, values) in arrays.items():
            z.writestr(name + ".npy", npy(shape, values))

ref = read_npz(work + "/ref.npz")
(frames, replicas, n, dim), x = ref["positions"]
last = x[(frames - 1) * replicas * n * dim:]
energies = ref["energies"][1][(frames - 1) * replicas:]
log_w = [0.0, 1.0, -0.5, 2.0, float("-inf"), 0.25, -1.0, 0.5]
pos = ((replicas, n, dim), last)
write_npz(work + "/weighted.npz", {"positions": pos, "log_w": ((replicas,), log_w), "energies": ((replicas,), energies)})
write_npz(work + "/noenergy.npz", {"positions": pos, "log_w": ((replicas,), log_w)})
write_npz(work + "/shifted.npz", {"positions": pos, "log_w": ((replicas,), [0.0] * replicas),
                                  "energies": ((replicas,), [e + 0.75 for e in energies])})
write_npz(work + "/noweights.npz", {"positions": pos, "energies": ((replicas,), energies)})
write_npz(work + "/zeroweights.npz", {"positions": pos, "log_w": ((replicas,), [float("-inf")] * replicas),
                                      "energies": ((replicas,), energies)})
write_npz(work + "/three.npz", {"positions": ((replicas, 3, dim), last[:replicas * 3 * dim]),
                                "log_w": ((replicas,), [0.0] * replicas), "energies": ((replicas,), energies)})
w = [math.exp(v) for v in log_w]
ess = sum(w) ** 2 / (len(w) * sum(v * v for v in w))
mean = sum(w) / len(w)
sd = math.sqrt(sum((v - mean) ** 2 for v in w) / (len(w) - 1))
with open(work + "/expected", "w") as f:
    f.write("%r %r %r\n" % (ess, math.log(mean), sd / (math.sqrt(len(w)) * mean)))
PY

out=$("$bin" metrics --in "$work/weighted.npz" --reference "$work/ref.npz" --burn-in 10 --json "$work/w.json") ||
  fail "weighted: $out"
grep -q "8 weighted samples (1 with non-finite log w, counted as weight 0)" <<<"$out" || fail "zero-weight count: $out"
for row in "ESS" "log Z" "energy W1" "energy W2" "distance W2"; do
  grep -q "^  $row " <<<"$out" || fail "no '$row' row: $out"
done
python3 - "$work/w.json" "$work/expected" <<'PY' || fail "weighted json: $(cat "$work/w.json")"
import json, sys
m = json.load(open(sys.argv[1]))
ess, log_z, se = (float(v) for v in open(sys.argv[2]).read().split())
assert abs(m["ess"] - ess) < 1e-12 and abs(m["log_z"] - log_z) < 1e-12 and abs(m["log_z_se"] - se) < 1e-12, (m, ess, log_z, se)
assert m["non_finite_log_w"] == 1 and m["num_samples"] == 8 and abs(m["effective_count"] - 8 * ess) < 1e-9
assert m["energy_w1"] > 0 and m["energy_w2"] >= m["energy_w1"] and m["distance_w2"] > 0
assert m["reference_frames"] == 50 and m["reference_replicas"] == 8 and m["burn_in"] == 10
assert m["reference_energy_tau"] > 0 and abs(m["reference_effective_size"] - 400 / m["reference_energy_tau"]) < 1e-6
PY
# Energies recomputed with --system agree with those md stored.
"$bin" metrics --in "$work/noenergy.npz" --reference "$work/ref.npz" --burn-in 10 --system dw4 --json "$work/n.json" >/dev/null ||
  fail "recomputed energies"
python3 - "$work/w.json" "$work/n.json" <<'PY' || fail "recomputed energies differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert abs(a["energy_w1"] - b["energy_w1"]) < 1e-9 and abs(a["energy_w2"] - b["energy_w2"]) < 1e-9, (a, b)
PY
# The last frame against itself, energies shifted by 0.75: W1 = W2 = 0.75, distance W2 = 0.
"$bin" metrics --in "$work/shifted.npz" --reference "$work/ref.npz" --burn-in 59 --json "$work/s.json" >/dev/null || fail "shifted"
python3 - "$work/s.json" <<'PY' || fail "shifted json: $(cat "$work/s.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert abs(m["energy_w1"] - 0.75) < 1e-9 and abs(m["energy_w2"] - 0.75) < 1e-9 and m["distance_w2"] == 0, m
PY

expect_error "missing input" "cannot open" metrics --in "$work/none.npz" --reference "$work/ref.npz"
expect_error "missing reference" "cannot open" metrics --in "$work/weighted.npz" --reference "$work/none.npz"
expect_error "no reference option" "--reference is required" metrics --in "$work/weighted.npz"
expect_error "no weights" "no 'log_w'" metrics --in "$work/noweights.npz" --reference "$work/ref.npz"
expect_error "all weights zero" "every importance weight is zero" metrics --in "$work/zeroweights.npz" --reference "$work/ref.npz"
expect_error "shape mismatch" "has 3 particles in 2 dimensions" metrics --in "$work/three.npz" --reference "$work/ref.npz"
expect_error "wrong system" "positions" metrics --in "$work/weighted.npz" --reference "$work/ref.npz" --system lj13
expect_error "no energies" "give --system" metrics --in "$work/noenergy.npz" --reference "$work/ref.npz"
expect_error "burn-in too long" "--burn-in 60 must be below the 60 frames" metrics --reference "$work/ref.npz" --burn-in 60
expect_error "weighted reference" "unequal importance weights" metrics --in "$work/weighted.npz" --reference "$work/weighted.npz"
finish "metrics command"
