"""Energies and forces of the DW-4 configurations in examples/dw4.xyz through the Python module
(PYTHONPATH=build/python), the same numbers as `mintjulep energy --system dw4 --in examples/dw4.xyz`."""
import pathlib

import numpy as np

import mintjulep


def read_xyz(path):
    lines = pathlib.Path(path).read_text().split("\n")
    frames, i = [], 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        frames.append([[float(v) for v in line.split()[1:]] for line in lines[i + 2:i + 2 + n]])
        i += 2 + n
    return np.array(frames)


system = mintjulep.System("dw4")
x = read_xyz(pathlib.Path(__file__).parent.parent / "dw4.xyz")[:, :, :system.dim]
energies, forces = system.energy_and_forces(x)
for e, f in zip(energies, forces):
    print(f"{e:.6f} kT, largest force {np.abs(f).max():.6f}")
