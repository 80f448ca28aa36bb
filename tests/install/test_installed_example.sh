#!/usr/bin/env bash
# Installs the build into a temporary prefix, builds examples/cpp against the installed
# package (find_package(MintJulep)) and runs it: the example's user-defined energy is sampled by
# MALA annealing, and its log Z must agree with the example's own quadrature. The Python module,
# when built, must be installed and import from the prefix.
# Needs BUILD_DIR (the build folder) and SOURCE_DIR (the source tree).
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$BUILD_DIR" --prefix "$prefix" >"$work/install.log"
for f in include/mintjulep/model.hpp include/mintjulep/energy.hpp lib*/cmake/MintJulep/MintJulepConfig.cmake \
         lib*/cmake/MintJulep/MintJulepConfigVersion.cmake; do
  compgen -G "$prefix/$f" >/dev/null || { echo "FAIL: $f not installed"; exit 1; }
done
# Public headers must not include private ones (src/).
if grep -n '#include "' "$prefix"/include/mintjulep/*.hpp; then
  echo "FAIL: installed headers include private headers"; exit 1
fi
# The Python module, where it was built: installed into lib/python3.X/dist-packages, importable
# from there.
if compgen -G "$BUILD_DIR/python/mintjulep*.so" >/dev/null; then
  module=$(compgen -G "$prefix/lib/python3*/dist-packages/mintjulep*.so" | head -1) ||
    { echo "FAIL: the Python module is not installed"; exit 1; }
  PYTHONPATH=$(dirname "$module") /usr/bin/python3 -c \
    "import mintjulep; assert abs(mintjulep.System('dw4').energy([[0, 0], [4, 0], [4, 4], [0, 4]]) + 8.39664253) < 1e-6" ||
    { echo "FAIL: the installed Python module does not import"; exit 1; }
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$SOURCE_DIR/examples/cpp" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
OMP_NUM_THREADS=1 "$work/build/lj_trimer" --samples 2000 --steps 30 | tee "$work/out"
grep -q "^MALA annealing:  ESS" "$work/out" || { echo "FAIL: no annealing summary"; exit 1; }
grep -q "^agree:" "$work/out" || { echo "FAIL: log Z disagrees with the quadrature"; exit 1; }
echo "installed example: all checks passed"
