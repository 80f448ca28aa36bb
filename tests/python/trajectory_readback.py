"""Reads the PDB, DCD and extended XYZ files of `mintjulep md` and `mintjulep sample` back
with mdtraj and compares them with the .npz written next to them: coordinates to 1e-3
Angstrom, topology names, and the per-frame labels (log_w, energy).

Usage: trajectory_readback.py MINTJULEP_BINARY. Exits 77 (skipped) when mdtraj or numpy is
not installed (Debian: python3-mdtraj).
"""
import os
import re
import subprocess
import sys
import tempfile

try:
    import mdtraj
    import numpy as np
except ImportError as e:
    print(f"trajectory_readback: skipped, {e}")
    sys.exit(77)

BIN = sys.argv[1]
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")
TOL_ANGSTROM = 1e-3


def run(*args):
    result = subprocess.run([BIN, *args, "--threads", "1"], capture_output=True, text=True)
    assert result.returncode == 0, f"mintjulep {' '.join(args)} exited {result.returncode}: {result.stderr}"
    return result.stdout


def labels(path, pattern):
    """key=value pairs of each PDB REMARK line or XYZ comment line."""
    with open(path) as f:
        lines = f.read().splitlines()
    if path.endswith(".pdb"):
        texts = [line[11:] for line in lines if line.startswith("REMARK   1 ")]
    else:
        texts, i = [], 0
        while i < len(lines):
            texts.append(lines[i + 1])
            i += 2 + int(lines[i])
    return [dict(re.findall(r"(\w+)=(\S+)", t)) for t in texts if pattern in t]


def check_close(name, angstrom, expected_angstrom):
    assert angstrom.shape == expected_angstrom.shape, f"{name}: shape {angstrom.shape} != {expected_angstrom.shape}"
    err = np.abs(angstrom - expected_angstrom).max()
    assert err <= TOL_ANGSTROM, f"{name}: coordinates differ by {err} Angstrom"
    print(f"{name}: {angstrom.shape[0]} frames, max difference {err:.2e} Angstrom")


def pad_z(x):
    return x if x.shape[-1] == 3 else np.concatenate([x, np.zeros(x.shape[:-1] + (1,))], axis=-1)


def molecule_md(work):
    """ala2 dynamics: real atom names, nm in the .npz, Angstrom in the files."""
    base = os.path.join(work, "ala2")
    run("md", "--system", "ala2", "--replicas", "2", "--steps", "30", "--report-every", "10",
        "--out", base + ".pdb", "--trajectory", base + ".dcd", "--trajectory", base + ".xyz")
    arrays = np.load(base + ".npz")
    x = arrays["positions"]  # (F, R, N, 3) nm
    expected = 10 * x.transpose(1, 0, 2, 3).reshape(-1, x.shape[2], 3)  # replica by replica
    energies = arrays["energies"].T.reshape(-1)
    reference = mdtraj.load(os.path.join(DATA, "alanine-dipeptide", "ala2.pdb")).topology
    pdb = mdtraj.load(base + ".pdb")
    atoms = [(a.name, a.residue.name, a.residue.index, a.element.symbol) for a in pdb.topology.atoms]
    assert atoms == [(a.name, a.residue.name, a.residue.index, a.element.symbol) for a in reference.atoms], atoms
    for suffix in (".pdb", ".dcd", ".xyz"):
        traj = mdtraj.load(base + suffix, top=base + ".pdb")  # mdtraj works in nm
        check_close("ala2 md" + suffix, 10 * traj.xyz.astype(np.float64), expected)
    for suffix in (".pdb", ".xyz"):
        found = labels(base + suffix, "replica=")
        assert len(found) == len(energies), (suffix, len(found))
        np.testing.assert_allclose([float(d["energy"]) for d in found], energies, rtol=1e-8, atol=1e-8)
        assert [int(d["replica"]) for d in found] == [0, 0, 0, 1, 1, 1], found


def cluster_samples(work):
    """dw4 (2D, reduced units) importance samples and their resampled copy."""
    config = os.path.join(work, "dw4.toml")
    with open(config, "w") as f:
        f.write("system = \"dw4\"\n[prior]\ncomponents = 2\n[mint]\nsteps = 5\nsamples = 64\n"
                "log_every = 5\neval_samples = 64\n[network]\nhidden = 8\nlayers = 1\n")
    run("train", config, "--out", os.path.join(work, "run"), "--stage", "mint", "--seed", "1")
    base = os.path.join(work, "dw4")
    run("sample", os.path.join(work, "run"), "--method", "prior", "--num-samples", "300", "--seed", "3",
        "--out", base + ".xyz", "--trajectory", base + ".pdb", "--trajectory", base + ".dcd")
    arrays = np.load(base + ".npz")
    expected = pad_z(arrays["positions"])  # reduced units = Angstrom in the files
    for suffix in (".pdb", ".dcd", ".xyz"):
        traj = mdtraj.load(base + suffix, top=base + ".pdb")
        check_close("dw4 samples" + suffix, 10 * traj.xyz.astype(np.float64), expected)
        if suffix != ".dcd":
            found = labels(base + suffix, "log_w=")
            np.testing.assert_allclose([float(d["log_w"]) for d in found], arrays["log_w"], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose([float(d["energy"]) for d in found], arrays["energies"], rtol=1e-9, atol=1e-9)
    assert [r.name for r in traj.topology.residues] == ["UNK"] * 4

    out = run("sample", os.path.join(work, "run"), "--method", "prior", "--num-samples", "300", "--seed", "3",
              "--resample", "120", "--out", base + "-r.npz", "--trajectory", base + "-r.dcd")
    r = np.load(base + "-r.npz")
    w = np.exp(arrays["log_w"] - arrays["log_w"].max())
    ess = w.sum() ** 2 / (w ** 2).sum() / len(w)
    assert int(r["resampled_from"][0]) == 300 and abs(float(r["ess"][0]) - ess) < 1e-9, (r["ess"], ess)
    line = f"resampled 120 from 300 weighted samples, ESS {100 * ess:.1f}% ({ess * 300:.0f})"
    assert line in out, (line, out)
    index = r["source_index"]
    assert index.shape == (120,) and np.all(np.diff(index) >= 0) and np.all(w[index] > 0), index
    np.testing.assert_array_equal(r["positions"], arrays["positions"][index])
    np.testing.assert_array_equal(r["log_w"], np.zeros(120))
    # Each sample is copied floor or ceil of 120 w_i / sum w times.
    counts = np.bincount(index, minlength=300)
    assert np.all(np.abs(counts - 120 * w / w.sum()) < 1), counts
    traj = mdtraj.load(base + "-r.dcd", top=base + ".pdb")
    check_close("dw4 resampled.dcd", 10 * traj.xyz.astype(np.float64), pad_z(r["positions"]))


def main():
    with tempfile.TemporaryDirectory() as work:
        molecule_md(work)
        cluster_samples(work)
    print("trajectory_readback: all checks passed")


if __name__ == "__main__":
    main()
