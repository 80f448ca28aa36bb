#!/usr/bin/env bash
# Installs dependencies, builds, and runs the default example: energies of the built-in
# systems on the configurations shipped in examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
bin=${BUILD_DIR:-build}/mintjulep
echo "== dw4 (kT): square of side 4, rhombus"
"$bin" energy --system dw4 --in examples/dw4.xyz
echo "== lj:13:3 (pair term over i<j, eps = 1): icosahedral global minimum, perturbed copy"
"$bin" energy --system lj:13:3 --in examples/lj13-icosahedron.xyz
echo "== lj13 (ordered pairs + harmonic term), same configurations"
"$bin" energy --system lj13 --in examples/lj13-icosahedron.xyz
echo "== lj13 along the soft-core path at t = 0.5"
"$bin" energy --system lj13 --in examples/lj13-icosahedron.xyz --t 0.5
