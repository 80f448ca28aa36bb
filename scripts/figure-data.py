#!/usr/bin/python3
"""Data files for the figures of scripts/make-figures.sh (numpy only; run with Debian's python3).

usage:
  figure-data.py dw4  --prior P.npz --samples S.npz [--reference R.npz] [--run RUN] --out DIR
  figure-data.py ala2 --reference MD.npz --prior P.npz --samples S.npz [--burn-in F] --out DIR

dw4 writes into DIR:
  frame.dat      log10 of the KDE of the prior draws' particle positions in the anchored frame
                 (anchor at the origin, first frame particle turned onto the +x axis, DESIGN.md
                 §3) over its peak, NaN below 10^-decades, as "x y value" rows for gnuplot's
                 `with image`
  means.dat      the positions of every component mean of RUN's prior in the same frame
  dist.dat       "d  samples  reference  prior": KDE of the pair distances of the weighted samples
                 (weights softmax(log_w)), of the reference (equal weights) and of the prior draws
                 (unweighted, what the prior proposes)
  modes.dat      "d  weight": the pair distances of each component mean of RUN's prior
  vars.gp        numbers for the labels (gnuplot `load`)
ala2 writes DIR/rama-{reference,prior,samples}.dat ("phi psi F" with F = -log(p / p_max) in kT,
NaN above --fmax) and vars.gp with the basin weights and ESS of each set.

KDEs are binned (fine grid, weights summed per bin) and smoothed with a Gaussian kernel by FFT
(periodic in phi and psi). Prior means are read from RUN/prior.pt (a TorchScript archive; its
pickle is read with Python's own pickle module, no torch needed).
"""
import argparse
import collections
import json
import math
import os
import pickle
import sys
import zipfile

import numpy as np


# ----------------------------------------------------------------------------- input files

def load_weighted(path, burn_in=0):
    """positions (S, N, n) and normalised weights (S,) of `sample` output or an `md` trajectory."""
    d = np.load(path)
    if "positions" not in d.files:
        sys.exit(f"figure-data: '{path}' has no 'positions' array")
    x = d["positions"].astype(np.float64)
    if x.ndim == 4:  # md: (F, R, N, n), equal weights after the burn-in
        if not 0 <= burn_in < x.shape[0]:
            sys.exit(f"figure-data: --burn-in {burn_in} must be below the {x.shape[0]} frames of '{path}'")
        x = x[burn_in:].reshape(-1, x.shape[2], x.shape[3])
        w = np.full(len(x), 1.0 / len(x))
        return x, w, 1.0, "md"
    if "log_w" not in d.files:
        sys.exit(f"figure-data: '{path}' has positions but no 'log_w'")
    log_w = d["log_w"].astype(np.float64)
    ok = np.isfinite(log_w)
    x, log_w = x[ok], log_w[ok]
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    ess = 1.0 / (len(w) * np.sum(w * w))
    return x, w, ess, "weighted"


class _Module:
    pass


def _rebuild_tensor(storage, offset, size, stride, *unused):
    if len(size) == 0:
        return storage[offset].copy()
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride))
    return view.copy()


_STORAGE = {"DoubleStorage": "<f8", "FloatStorage": "<f4", "LongStorage": "<i8",
            "IntStorage": "<i4", "BoolStorage": "?", "ByteStorage": "u1"}


def load_checkpoint(path):
    """The tensors of a LibTorch module saved with torch::save (prior.pt) as numpy arrays."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next(n for n in names if n.endswith("/data.pkl") and n.count("/") == 1)
        prefix = pkl[: -len("data.pkl")]

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if module == "torch._utils" and name == "_rebuild_tensor_v2":
                    return _rebuild_tensor
                if module == "torch" and name in _STORAGE:
                    return _STORAGE[name]
                if module == "collections" and name == "OrderedDict":
                    return collections.OrderedDict
                if module.startswith("__torch__"):
                    return _Module
                raise pickle.UnpicklingError(f"unexpected {module}.{name} in {path}")

            def persistent_load(self, pid):
                _, dtype, key, _, _ = pid
                return np.frombuffer(z.read(f"{prefix}data/{key}"), dtype=dtype)

        module = Unpickler(z.open(pkl)).load()
    return {k: v for k, v in vars(module).items() if isinstance(v, np.ndarray)}


def prior_components(run):
    """(weights (K,), configurations (K, M, n) in the component frame, frame order: row 0 on +x)."""
    t = load_checkpoint(os.path.join(run, "prior.pt"))
    logits = t["logits"]
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    if "mean" in t and "torsion_centre" not in t:  # gaussian family, 2D or 3D (DESIGN.md §3b)
        m = t["mean"]
        K, D = m.shape
        n = 2 if D % 2 == 1 else 3
        rows = [np.stack([np.exp(m[:, 0]), np.zeros(K)] + ([np.zeros(K)] if n == 3 else []), 1)]
        if n == 3:
            rows.append(np.stack([m[:, 1], np.exp(m[:, 2]), np.zeros(K)], 1))
        head = np.stack(rows, 1)
        others = m[:, 1 if n == 2 else 3:].reshape(K, -1, n)
        return pi, np.concatenate([head, others], 1)
    if "mu" in t:  # per-particle family: directions (frame particle 1 along e1) x exp(rho)
        mu = t["mu"] / np.linalg.norm(t["mu"], axis=-1, keepdims=True)
        mu[:, 0] = 0.0
        mu[:, 0, 0] = 1.0
        return pi, mu * np.exp(t["rho"])[..., None]
    sys.exit(f"figure-data: {run}/prior.pt is neither the gaussian nor the per-particle family")


def pair_distances(x):
    i, j = np.triu_indices(x.shape[1], 1)
    return np.linalg.norm(x[:, i] - x[:, j], axis=-1)


# ----------------------------------------------------------------------------- smoothing

def gaussian_filter(h, sigma_bins, axes, periodic):
    """h convolved with a Gaussian of sigma_bins along `axes` (FFT; zero-padded unless periodic)."""
    out = h
    for ax in axes:
        n = out.shape[ax]
        pad = 0 if periodic else int(4 * sigma_bins) + 1
        size = n + 2 * pad
        k = np.fft.fftfreq(size)
        kernel = np.exp(-2.0 * (math.pi * sigma_bins * k) ** 2)
        shape = [1] * out.ndim
        shape[ax] = size
        padded = np.pad(out, [(pad, pad) if a == ax else (0, 0) for a in range(out.ndim)])
        f = np.fft.ifft(np.fft.fft(padded, axis=ax) * kernel.reshape(shape), axis=ax).real
        out = np.take(f, np.arange(pad, pad + n), axis=ax)
    return np.clip(out, 0.0, None)


def kde_1d(values, weights, grid_lo, grid_hi, step, bandwidth):
    edges = np.arange(grid_lo, grid_hi + step / 2, step)
    h, _ = np.histogram(values, bins=edges, weights=weights)
    h = gaussian_filter(h.astype(np.float64), bandwidth / step, [0], periodic=False)
    h /= h.sum() * step
    return 0.5 * (edges[1:] + edges[:-1]), h


def kde_2d(x, y, weights, lo, hi, step, bandwidth, periodic=False):
    edges = np.arange(lo, hi + step / 2, step)
    h, _, _ = np.histogram2d(x, y, bins=[edges, edges], weights=weights)
    h = gaussian_filter(h, bandwidth / step, [0, 1], periodic)
    h /= h.sum() * step * step
    return 0.5 * (edges[1:] + edges[:-1]), h


def write_grid(path, centres, h, fmt="%.6g"):
    """gnuplot `with image` input: 'x y value' with a blank line after each x."""
    with open(path, "w") as f:
        for i, cx in enumerate(centres):
            for j, cy in enumerate(centres):
                v = h[i, j]
                f.write(f"{cx:.4f} {cy:.4f} {'NaN' if not np.isfinite(v) else fmt % v}\n")
            f.write("\n")


def write_vars(path, values):
    with open(path, "w") as f:
        for k, v in values.items():
            f.write(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v!r}\n")


# ----------------------------------------------------------------------------- DW-4

def anchored_frame(x):
    """Positions (S, N, 2) -> the non-anchor particles (S, N-1, 2) rotated so that the first of them
    (the first frame particle) lies on the +x axis; the anchor is the particle at the origin."""
    at_origin = np.flatnonzero(np.all(np.abs(x) <= 1e-9, axis=(0, 2)))
    if len(at_origin) == 0:
        sys.exit("figure-data: no particle sits at the origin in every sample (expected the anchor)")
    anchor = at_origin[0]
    y = np.delete(x, anchor, axis=1)
    e1 = y[:, 0] / np.linalg.norm(y[:, 0], axis=-1, keepdims=True)
    rot = np.stack([e1, np.stack([-e1[:, 1], e1[:, 0]], -1)], 1)  # rows e1, e2
    return np.einsum("smc,sdc->smd", y, rot), int(anchor)


def cmd_dw4(a):
    os.makedirs(a.out, exist_ok=True)
    out = {}
    xp, wp, ess_p, _ = load_weighted(a.prior)
    if xp.shape[1:] != (4, 2):
        sys.exit(f"figure-data: {a.prior} holds {xp.shape[1:]} positions, DW-4 has (4, 2)")
    yp, anchor = anchored_frame(xp)
    centres, h = kde_2d(yp[..., 0].ravel(), yp[..., 1].ravel(), None, -a.extent, a.extent,
                        a.grid, a.frame_bandwidth)
    with np.errstate(divide="ignore"):
        h = np.log10(h / h.max())
    h[h < -a.decades] = np.nan  # white: below 10^-decades of the peak
    write_grid(os.path.join(a.out, "frame.dat"), centres, h, "%.4f")
    out.update(prior_count=len(xp), prior_ess=100 * ess_p, anchor=anchor, extent=a.extent,
               decades=a.decades)

    xs, ws, ess_s, kind = load_weighted(a.samples)
    ds = pair_distances(xs)
    lo, hi = 0.0, a.max_distance
    grid, fs = kde_1d(ds.ravel(), np.repeat(ws, ds.shape[1]), lo, hi, 0.01, a.bandwidth)
    _, fq = kde_1d(pair_distances(xp).ravel(), None, lo, hi, 0.01, a.bandwidth)
    columns = [grid, fs, np.full_like(grid, np.nan), fq]
    out.update(samples_count=len(xs), samples_ess=100 * ess_s)
    if a.reference:
        xr, wr, _, _ = load_weighted(a.reference, a.burn_in)
        dr = pair_distances(xr)
        columns[2] = kde_1d(dr.ravel(), None, lo, hi, 0.01, a.bandwidth)[1]
        out.update(reference_count=len(xr), has_reference=1)
    else:
        out.update(reference_count=0, has_reference=0)
    np.savetxt(os.path.join(a.out, "dist.dat"), np.stack(columns, 1), fmt="%.6g",
               header="d samples(weighted) reference prior(unweighted)")
    out["dist_max"] = float(np.nanmax(np.stack(columns[1:]))) if a.reference else float(max(fs.max(), fq.max()))

    if a.run:
        pi, conf = prior_components(a.run)
        full = np.concatenate([np.zeros((len(pi), 1, 2)), conf], 1)  # anchor at the origin
        d = pair_distances(full)
        np.savetxt(os.path.join(a.out, "modes.dat"),
                   np.stack([d.ravel(), np.repeat(pi, d.shape[1])], 1), fmt="%.6g",
                   header="pair distance of a component mean, weight of the component")
        with open(os.path.join(a.out, "means.dat"), "w") as f:
            f.write("# x y weight particle (frame order: particle 1 on +x)\n")
            for k in range(len(pi)):
                for i in range(conf.shape[1]):
                    f.write(f"{conf[k, i, 0]:.6g} {conf[k, i, 1]:.6g} {pi[k]:.6g} {i + 1}\n")
        out.update(components=len(pi), has_modes=1)
    else:
        out.update(components=0, has_modes=0)
    write_vars(os.path.join(a.out, "vars.gp"), out)
    print(json.dumps(out))


# ----------------------------------------------------------------------------- alanine dipeptide

# ACE-ALA-NME (data/alanine-dipeptide/ala2.pdb, 0-based): C of ACE, N, CA, CB, C, N of NME
C0, N, CA, CB, C, N2 = 4, 6, 8, 10, 14, 16


def dihedral(x, i, j, k, l):
    b1, b2, b3 = x[:, j] - x[:, i], x[:, k] - x[:, j], x[:, l] - x[:, k]
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    return np.degrees(np.arctan2(np.linalg.norm(b2, axis=-1) * np.sum(b1 * n2, -1), np.sum(n1 * n2, -1)))


def phi_psi(x):
    """(phi, psi) in degrees with D forms mirrored to L (as `mintjulep ramachandran` does)."""
    ca = x[:, CA]
    vol = np.sum((x[:, N] - ca) * np.cross(x[:, C] - ca, x[:, CB] - ca), -1)
    s = np.where(vol >= 0, 1.0, -1.0)
    return s * dihedral(x, C0, N, CA, C), s * dihedral(x, N, CA, C, N2)


def basins(phi, psi, w):
    left = phi >= 0
    alpha_r = ~left & (psi >= -120) & (psi < 50)
    fl, fa = float(w[left].sum()), float(w[alpha_r].sum())
    return 1.0 - fl - fa, fa, fl


def cmd_ala2(a):
    os.makedirs(a.out, exist_ok=True)
    out = {"fmax": a.fmax}
    for name, path, burn in (("reference", a.reference, a.burn_in), ("prior", a.prior, 0),
                             ("samples", a.samples, 0)):
        x, w, ess, kind = load_weighted(path, burn)
        if kind == "md":
            shape = np.load(path)["positions"].shape
            out.update({f"{name}_replicas": shape[1], f"{name}_frames": shape[0] - burn,
                        f"{name}_burn_in": burn})
        if x.shape[1:] != (22, 3):
            sys.exit(f"figure-data: {path} holds {x.shape[1:]} positions, alanine dipeptide has (22, 3)")
        if name == "prior":
            w = np.full(len(x), 1.0 / len(x))  # what the prior proposes: its draws, unweighted
        phi, psi = phi_psi(x)
        step = 360.0 / a.bins
        centres, h = kde_2d(phi, psi, w, -180.0, 180.0, step, a.bandwidth, periodic=True)
        f = -np.log(h / h.max(), where=h > 0, out=np.full_like(h, np.inf))
        f[f > a.fmax] = np.nan
        write_grid(os.path.join(a.out, f"rama-{name}.dat"), centres, f, "%.4f")
        c5, ar, al = basins(phi, psi, w)
        out.update({f"{name}_count": len(x), f"{name}_ess": 100 * ess, f"{name}_c7eq_c5": c5,
                    f"{name}_alpha_r": ar, f"{name}_alpha_l": al})
    write_vars(os.path.join(a.out, "vars.gp"), out)
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dw4")
    d.add_argument("--prior", required=True, help="prior draws (sample --method prior)")
    d.add_argument("--samples", required=True, help="weighted samples (e.g. sample --method mala)")
    d.add_argument("--reference", help="reference md trajectory or equally weighted samples")
    d.add_argument("--burn-in", type=int, default=0, help="md frames dropped from the reference")
    d.add_argument("--run", help="run folder whose prior.pt gives the component means")
    d.add_argument("--out", required=True)
    d.add_argument("--extent", type=float, default=7.0, help="frame plot from -E to E")
    d.add_argument("--grid", type=float, default=0.05)
    d.add_argument("--frame-bandwidth", type=float, default=0.1)
    d.add_argument("--decades", type=float, default=3.0, help="frame density shown down to 10^-D of its peak")
    d.add_argument("--bandwidth", type=float, default=0.05, help="pair-distance KDE bandwidth")
    d.add_argument("--max-distance", type=float, default=8.0)
    d.set_defaults(func=cmd_dw4)
    r = sub.add_parser("ala2")
    r.add_argument("--reference", required=True, help="md trajectory (mintjulep md)")
    r.add_argument("--prior", required=True, help="prior draws (sample --method prior), shown unweighted")
    r.add_argument("--samples", required=True, help="weighted samples (e.g. sample --method mala)")
    r.add_argument("--burn-in", type=int, default=20, help="md frames dropped per replica")
    r.add_argument("--bins", type=int, default=180)
    r.add_argument("--bandwidth", type=float, default=6.0, help="degrees")
    r.add_argument("--fmax", type=float, default=8.0, help="kT; white above")
    r.add_argument("--out", required=True)
    r.set_defaults(func=cmd_ala2)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
