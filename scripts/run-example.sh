#!/usr/bin/env bash
# Installs dependencies, builds, and runs the default example: energies of the built-in
# systems on the configurations in examples/, then MintJulep on DW-4 end to end (the gaussian
# Mint prior on the harmonic basins of its minima, then exact MALA annealing, path ESS and
# log Z on 1e4 samples) and a draw of weighted samples, and the DW-4 energies again through the
# Python module. About 8 minutes on 2 cores after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
bin=${BUILD_DIR:-build}/mintjulep
echo "== energies (kT): dw4 square and rhombus; lj:13:3 icosahedral global minimum and a perturbed copy"
"$bin" energy --system dw4 --in examples/dw4.xyz
"$bin" energy --system lj:13:3 --in examples/lj13-icosahedron.xyz
echo "== alanine dipeptide (amber99sb-ildn, vacuum and OBC) at its PDB structure, kT at 300 K"
"$bin" energy --system ala2 --in data/alanine-dipeptide/ala2.pdb
"$bin" energy --system ala2-implicit --in data/alanine-dipeptide/ala2.pdb
echo "== MintJulep on DW-4 (configs/dw4.toml)"
"$bin" train configs/dw4.toml --out runs/dw4-example
"$bin" sample runs/dw4-example --num-samples 2000 --out runs/dw4-example/samples.npz
echo "== metrics: runs/dw4-example/metrics.json"
cat runs/dw4-example/metrics.json
python_dir=$(cd "${BUILD_DIR:-build}" && pwd)/python
if [ -d "$python_dir" ]; then
  echo "== the DW-4 energies from Python (examples/python/dw4_energies.py)"
  PYTHONPATH="$python_dir" /usr/bin/python3 examples/python/dw4_energies.py
  echo "== the Python module: export PYTHONPATH=$python_dir"
fi
