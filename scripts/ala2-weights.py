#!/usr/bin/env python3
"""Where the importance weights of alanine-dipeptide samples go (pure Python, no numpy).

usage: scripts/ala2-weights.py SAMPLES.npz [TOP]

Reads `mintjulep sample` output (positions (M, 22, 3), log_w, energies) and prints the ESS and
log Z, the weight, sample count, ESS and log w spread per backbone basin (D forms mirrored to
L), and the TOP samples of largest weight with their basin, phi/psi, methyl torsions, energy and
log q = -U - log w: where the heavy tail of the weights comes from.
"""
import ast, math, struct, sys, zipfile
from array import array

def read_npz(path):
    out = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            raw = z.read(name)
            assert raw[:6] == b"\x93NUMPY"
            major = raw[6]
            hlen = struct.unpack("<H" if major == 1 else "<I", raw[8:10] if major == 1 else raw[8:12])[0]
            start = (10 if major == 1 else 12)
            header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
            assert header["descr"] in ("<f8", "<f4") and not header["fortran_order"], header
            a = array("d" if header["descr"] == "<f8" else "f")
            a.frombytes(raw[start + hlen:])
            out[name[:-4]] = (a, header["shape"])
    return out

def sub(a, b): return (a[0] - b[0], a[1] - b[1], a[2] - b[2])
def cross(a, b): return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
def dot(a, b): return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]

def dihedral(p0, p1, p2, p3):
    b0, b1, b2 = sub(p1, p0), sub(p2, p1), sub(p3, p2)
    n1, n2 = cross(b0, b1), cross(b1, b2)
    return math.degrees(math.atan2(math.sqrt(dot(b1, b1)) * dot(b0, n2), dot(n1, n2)))

# ACE-ALA-NME atom indices (data/alanine-dipeptide/ala2.pdb, 0-based)
C0, N, CA, HA, CB, C, N2 = 4, 6, 8, 9, 10, 14, 16
METHYLS = {"ace": (0, 1, 4, 6), "cb": (11, 10, 8, 6), "nme": (19, 18, 16, 14)}

def basin(phi, psi):
    if phi >= 0: return "alpha_L/C7ax"
    if -120 <= psi < 50: return "alpha_R"
    return "C7eq/C5"

def main():
    d = read_npz(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    x, shape = d["positions"]
    lw = list(d["log_w"][0])
    U = list(d["energies"][0])
    S, P = shape[0], shape[1]
    rows = []
    for s in range(S):
        o = s * P * 3
        pos = [(x[o + 3 * i], x[o + 3 * i + 1], x[o + 3 * i + 2]) for i in range(P)]
        # chirality of CA: sign of (N - CA) x (C - CA) . (CB - CA); L in the PDB is positive
        chi = dot(cross(sub(pos[N], pos[CA]), sub(pos[C], pos[CA])), sub(pos[CB], pos[CA]))
        sgn = 1 if chi > 0 else -1
        phi = sgn * dihedral(pos[C0], pos[N], pos[CA], pos[C])
        psi = sgn * dihedral(pos[N], pos[CA], pos[C], pos[N2])
        meth = {k: sgn * dihedral(*(pos[i] for i in v)) for k, v in METHYLS.items()}
        omega = [dihedral(pos[1], pos[C0], pos[N], pos[CA]), dihedral(pos[CA], pos[C], pos[N2], pos[18])]
        rows.append((lw[s], basin(phi, psi), phi, psi, meth, U[s], sgn, omega))
    finite = [r for r in rows if math.isfinite(r[0])]
    mx = max(r[0] for r in finite)
    w = [math.exp(r[0] - mx) for r in finite]
    sw = sum(w)
    print(f"{S} samples ({S - len(finite)} non-finite), ESS {100 * sw * sw / sum(v * v for v in w) / len(w):.3f}%, "
          f"log Z {mx + math.log(sw / len(w)):.4f}")
    print(f"{'basin':14s} {'weight':>8s} {'samples':>8s} {'ESS in basin':>12s} {'mean log w':>10s} {'sd log w':>8s} {'max log w':>9s}")
    for b in ("C7eq/C5", "alpha_R", "alpha_L/C7ax"):
        idx = [i for i, r in enumerate(finite) if r[1] == b]
        if not idx: print(f"{b:14s} {0:8.4f} {0:8d}"); continue
        wb = [w[i] for i in idx]
        l = [finite[i][0] for i in idx]
        mean = sum(l) / len(l)
        sd = math.sqrt(sum((v - mean) ** 2 for v in l) / len(l))
        ess = sum(wb) ** 2 / sum(v * v for v in wb) / len(wb) if sum(wb) > 0 else 0
        print(f"{b:14s} {sum(wb) / sw:8.4f} {len(idx):8d} {100 * ess:11.2f}% {mean:10.2f} {sd:8.2f} {max(l):9.2f}")
    cis = [i for i, r in enumerate(finite) if min(abs(r[7][0]), abs(r[7][1])) < 90]
    print(f"cis amide (|omega| < 90): {len(cis)} samples, weight {sum(w[i] for i in cis) / sw:.4f}")
    order = sorted(range(len(finite)), key=lambda i: -finite[i][0])[:top]
    print(f"top {top} weights: share  log w  basin  phi psi  methyl torsions (ace cb nme)  omega  U  log q")
    for i in order:
        r = finite[i]
        m = r[4]
        print(f"{w[i] / sw:.4f} {r[0]:8.2f} {r[1]:13s} {r[2]:7.1f} {r[3]:7.1f}  {m['ace']:7.1f} {m['cb']:7.1f} {m['nme']:7.1f}"
              f"  {r[7][0]:7.1f} {r[7][1]:7.1f}  {r[5]:8.2f} {-r[5] - r[0]:8.2f}")

main()
