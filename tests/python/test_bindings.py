"""Tests of the `mintjulep` Python module (run by ctest as python_bindings, or with
PYTHONPATH=build/python python3 -m pytest tests/python/test_bindings.py).

MINTJULEP names the command line tool (its energies are compared with the module's); the tests
that need it skip without it.
"""
import math
import os
import subprocess

import numpy as np
import pytest

import mintjulep


def dw4_energy(x):
    """The DW-4 pair energy in closed form: sum_{i<j} -4 (r - 4)^2 + 0.9 (r - 4)^4."""
    i, j = np.triu_indices(4, 1)
    r = np.linalg.norm(x[:, i] - x[:, j], axis=-1)
    d = r - 4.0
    return (-4.0 * d**2 + 0.9 * d**4).sum(-1)


def numerical_forces(energy, x, h=1e-6):
    f = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[1:]):
        up, down = x.copy(), x.copy()
        up[(slice(None),) + idx] += h
        down[(slice(None),) + idx] -= h
        f[(slice(None),) + idx] = -(energy(up) - energy(down)) / (2 * h)
    return f


def test_system_properties():
    s = mintjulep.System("dw4")
    assert (s.name, s.num_particles, s.dim) == ("dw4", 4, 2)
    assert mintjulep.System("lj13").num_particles == 13
    assert mintjulep.System("lj:5:3").dim == 3
    assert any(line.startswith("dw4") for line in mintjulep.known_systems())


def test_dw4_energy_matches_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.5, size=(7, 4, 2))
    s = mintjulep.System("dw4")
    e = s.energy(x)
    assert isinstance(e, np.ndarray) and e.dtype == np.float64 and e.shape == (7,)
    np.testing.assert_allclose(e, dw4_energy(x), rtol=1e-12, atol=1e-10)
    # One configuration (N, n) gives a float; lists and float32 arrays are accepted.
    one = s.energy(x[0])
    assert isinstance(one, float)
    assert one == pytest.approx(dw4_energy(x[:1])[0], rel=1e-12)
    assert s.energy(x[0].tolist()) == pytest.approx(one, rel=1e-12)
    assert s.energy(x.astype(np.float32))[0] == pytest.approx(e[0], rel=1e-5)


@pytest.mark.parametrize("name", ["dw4", "lj13", "lj:6:3"])
def test_forces_are_minus_the_gradient(name):
    s = mintjulep.System(name)
    rng = np.random.default_rng(1)
    # Particles on a loose lattice with noise: no overlaps for the Lennard-Jones systems.
    n, d = s.num_particles, s.dim
    grid = np.stack(np.meshgrid(*[np.arange(3)] * d, indexing="ij"), -1).reshape(-1, d)[:n]
    x = 1.2 * grid[None] + rng.normal(scale=0.05, size=(3, n, d))
    f = s.forces(x)
    assert f.shape == x.shape and f.dtype == np.float64
    np.testing.assert_allclose(f, numerical_forces(s.energy, x), rtol=1e-5, atol=1e-5)
    e, f2 = s.energy_and_forces(x[0])
    assert e == pytest.approx(s.energy(x[0]), rel=1e-12)
    np.testing.assert_allclose(f2, f[0], rtol=1e-12, atol=1e-12)


def test_energies_equal_the_command_line(tmp_path):
    tool = os.environ.get("MINTJULEP")
    if not tool:
        pytest.skip("MINTJULEP (the command line tool) not set")
    rng = np.random.default_rng(2)
    s = mintjulep.System("lj13")
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)[:13]
    x = 1.1 * grid[None] + rng.normal(scale=0.05, size=(4, 13, 3))
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([tool, "energy", "--system", "lj13", "--in", str(tmp_path / "x.npy"),
                          "--forces", "--threads", "1"], check=True, capture_output=True, text=True).stdout
    values = np.array([[float(v) for v in line.split()] for line in out.splitlines()])
    np.testing.assert_allclose(s.energy(x), values[:, 0], rtol=1e-12)
    np.testing.assert_allclose(s.forces(x).reshape(4, -1), values[:, 1:], rtol=1e-9, atol=1e-9)


def test_bad_input_raises_mintjulep_error():
    assert issubclass(mintjulep.Error, RuntimeError)
    with pytest.raises(mintjulep.Error, match="unknown system 'dw5'") as info:
        mintjulep.System("dw5")
    assert "\n" not in str(info.value)
    s = mintjulep.System("dw4")
    with pytest.raises(mintjulep.Error, match=r"have shape \(2, 3, 2\), but system 'dw4' needs \(B, 4, 2\)"):
        s.energy(np.zeros((2, 3, 2)))
    with pytest.raises(mintjulep.Error, match=r"needs \(B, 4, 2\) or \(4, 2\)"):
        s.forces(np.zeros(8))
    with pytest.raises(mintjulep.Error, match="array of numbers"):
        s.energy("four particles")
    with pytest.raises(mintjulep.Error, match="outside"):
        s.energy(np.zeros((4, 2)), t=2.0)
    with pytest.raises(mintjulep.Error, match="does not exist"):
        mintjulep.train("no-such-config.toml", out="unused")
    with pytest.raises(mintjulep.Error, match="not found"):
        mintjulep.sample("no-such-run")


TINY_DW4 = """
system = "dw4"
seed = 0
[prior]
family = "gaussian"
components = 4
init = "harmonic"
starts_per_component = 2
[mint]
steps = 10
samples = 128
log_every = 5
eval_samples = 200
beta_start = 1.0
warmup_steps = 0
[network]
hidden = 8
layers = 1
[julep]
steps = 5
[train]
iterations = 0
baseline = false
eval_samples = 200
[anneal]
method = "mala"
steps = 5
pilot = 50
"""


def test_train_and_sample_dw4(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_DW4)
    metrics = mintjulep.train(str(config), out=str(tmp_path / "run"), seed=0, threads=1, quiet=True)
    assert isinstance(metrics, dict)
    assert (tmp_path / "run" / "prior.pt").exists()
    s = mintjulep.sample(str(tmp_path / "run"), method="mala", num_samples=64, seed=0, threads=1, quiet=True)
    assert s.positions.shape == (64, 4, 2) and s.positions.dtype == np.float64
    assert s.log_w.shape == (64,) and s.log_w.dtype == np.float64
    assert np.isfinite(s.log_w).all()
    assert 0 < s.ess <= 1 and math.isfinite(s.log_z)
    np.testing.assert_allclose(s.energies, mintjulep.System("dw4").energy(s.positions), rtol=1e-9, atol=1e-9)
    assert s["log_z"] == s.log_z
    # The same seed gives the same samples; the prior alone works too.
    again = mintjulep.sample(str(tmp_path / "run"), method="mala", num_samples=64, seed=0, threads=1, quiet=True)
    np.testing.assert_array_equal(again.log_w, s.log_w)
    prior = mintjulep.sample(str(tmp_path / "run"), method="prior", num_samples=32, threads=1, quiet=True)
    assert prior.log_w.shape == (32,)
    with pytest.raises(mintjulep.Error, match="method must be"):
        mintjulep.sample(str(tmp_path / "run"), method="hmc", num_samples=8, quiet=True)


# A trapped Lennard-Jones trimer in 2D (examples/cpp/lj_trimer.cpp), defined in numpy:
#   U = eps sum_{i<j} [(rm/r)^12 - 2 (rm/r)^6] + k/2 sum_i |x_i - mean x|^2.
EPS, RM, TRAP = 6.0, 1.0, 8.0
PAIRS = np.array([(0, 1), (0, 2), (1, 2)])


def trimer_energy(x):
    d = x[:, PAIRS[:, 0]] - x[:, PAIRS[:, 1]]
    u = (RM**2 / (d**2).sum(-1)) ** 3
    centred = x - x.mean(1, keepdims=True)
    return (EPS * u * (u - 2)).sum(-1) + 0.5 * TRAP * (centred**2).sum((1, 2))


def trimer_gradient(x):
    d = x[:, PAIRS[:, 0]] - x[:, PAIRS[:, 1]]
    r2 = (d**2).sum(-1)
    u = (RM**2 / r2) ** 3
    # d/dd of eps (u^2 - 2u) with du/dd = -6 u d / r^2.
    pair = (EPS * (2 * u - 2) * (-6 * u / r2))[..., None] * d
    g = TRAP * (x - x.mean(1, keepdims=True))
    for p, (i, j) in enumerate(PAIRS):
        g[:, i] += pair[:, p]
        g[:, j] -= pair[:, p]
    return g


def trimer_log_z(h=0.03, extent=6.0):
    """log of the integral of exp(-U) over particles 1 and 2 with particle 0 at the origin, by the
    midpoint rule (particle 1 on the positive x axis, particle 2 in the upper half plane)."""
    def lj(r2):
        u = (RM**2 / r2) ** 3
        return EPS * u * (u - 2)
    n = int(extent / h)
    bx, by = np.meshgrid((np.arange(-n, n) + 0.5) * h, (np.arange(n) + 0.5) * h, indexing="ij")
    r02 = bx**2 + by**2
    total = 0.0
    for a in (np.arange(n) + 0.5) * h:
        r12 = (bx - a) ** 2 + by**2
        u = lj(a * a) + lj(r02) + lj(r12) + 0.5 * TRAP * (a * a + r02 + r12) / 3.0
        total += a * np.exp(-np.minimum(u, 700)).sum()
    return math.log(4 * math.pi * total * h**3)


def test_python_energy_forces():
    rng = np.random.default_rng(3)
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.9]])[None] + rng.normal(scale=0.05, size=(4, 3, 2))
    exact = mintjulep.PythonEnergy(trimer_energy, 3, 2, 1.0, grad=trimer_gradient, name="trimer")
    fd = mintjulep.PythonEnergy(trimer_energy, 3, 2, 1.0)
    assert (exact.name, exact.num_particles, exact.dim) == ("trimer", 3, 2)
    np.testing.assert_allclose(exact.energy(x), trimer_energy(x), rtol=1e-12)
    np.testing.assert_allclose(exact.forces(x), -trimer_gradient(x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fd.forces(x), -trimer_gradient(x), rtol=1e-5, atol=1e-4)
    bad = mintjulep.PythonEnergy(lambda x: np.zeros(len(x) + 1), 3, 2)
    with pytest.raises(mintjulep.Error, match=r"returned shape \(5,\), expected \(4,\)"):
        bad.energy(x)

    def failing(x):
        raise ValueError("no energy here")
    with pytest.raises(ValueError, match="no energy here"):
        mintjulep.PythonEnergy(failing, 3, 2).energy(x)


TRIMER_CONFIG = """
system = "trimer"   # a name only: the energy is the PythonEnergy
[prior]
family = "gaussian"
init = "harmonic"
components = 12
[anneal]
method = "mala"
steps = 50
pilot = 200
"""


def test_python_energy_mala_log_z(tmp_path):
    config = tmp_path / "trimer.toml"
    config.write_text(TRIMER_CONFIG)
    energy = mintjulep.PythonEnergy(trimer_energy, 3, 2, 1.0, grad=trimer_gradient, name="trimer")
    m = 2000
    s = mintjulep.sample_energy(energy, config=str(config), method="mala", num_samples=m, seed=0,
                                threads=1, quiet=True)
    assert s.log_w.shape == (m,) and np.isfinite(s.log_w).all()
    se = math.sqrt(max(1 / s.ess - 1, 0) / m)
    reference = trimer_log_z()
    assert abs(s.log_z - reference) < 4 * max(se, 1e-3), (s.log_z, se, reference, s.ess)
    np.testing.assert_allclose(s.energies, trimer_energy(s.positions), rtol=1e-9, atol=1e-9)
    with pytest.raises(mintjulep.Error, match="method must be prior, mala or smc-mala"):
        mintjulep.sample_energy(energy, method="julep", num_samples=8, quiet=True)
