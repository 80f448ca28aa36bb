#!/usr/bin/env bash
# Julep kernel throughput, C++ against the PyTorch twin of its network (bench/python_kernel_twin.py),
# in one run, on one thread, in trajectory-steps per second (batch 100; DW-4 and LJ-13 at T = 100,
# LJ-55 at T = 10). With BEFORE=<an older bench_kernel binary> that binary runs too, alternating
# with the current one (ROUNDS times, default 2), for a before/after table on the same machine
# state (rows "ais": sampling with the network off, in binaries that have that benchmark). The load average is printed before each run: on a shared machine, compare only numbers
# taken back to back.
#   bash bench/compare_kernel.sh                      # C++ (build/) and Python
#   BEFORE=build/before/bench_kernel bash bench/compare_kernel.sh
#   SYSTEMS=dw4,lj13 bash bench/compare_kernel.sh     # leave LJ-55 out
# Needs python3 with torch (Debian: apt-get install python3-torch); PYTHON overrides the
# interpreter. Python runs with glibc told to keep freed memory, as bench_kernel does itself.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
NEW=${NEW:-$BUILD_DIR/bench/bench_kernel}
BEFORE=${BEFORE:-}
ROUNDS=${ROUNDS:-2}
SYSTEMS=${SYSTEMS:-dw4,lj13,lj55}
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in /usr/bin/python3 python3; do
    if "$candidate" -c "import torch" 2>/dev/null; then PYTHON=$candidate; break; fi
  done
fi
filter=$(echo "$SYSTEMS" | sed -e 's/dw4/Dw4/; s/lj13/Lj13/; s/lj55/Lj55/; s/,/|/g')
filter="($filter)/"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run_cpp() {  # label binary
  echo "# $1: $2, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  MINTJULEP_THREADS=1 "$2" --benchmark_filter="$filter" --benchmark_format=csv 2>/dev/null |
    awk -F, -v label="$1" '/^"BM_/ {
      split($1, p, "/"); name = p[1]; gsub(/"|BM_/, "", name); split(name, q, "_");
      steps = p[2] * p[3];                       # batch x T
      real = $3; cpu = $4; unit = $5; gsub(/"/, "", unit);
      scale = unit == "s" ? 1 : unit == "ms" ? 1e-3 : unit == "us" ? 1e-6 : 1e-9;
      printf "%s %s %s %.1f %.1f\n", label, tolower(q[2]), tolower(q[1]), steps / (real * scale), steps / (cpu * scale) }'
}

for round in $(seq 1 "$ROUNDS"); do
  if [ -n "$BEFORE" ]; then run_cpp before "$BEFORE" >>"$out/rows"; fi
  run_cpp after "$NEW" >>"$out/rows"
done
if [ -n "$PYTHON" ]; then
  echo "# python: $PYTHON, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=67108864 \
    "$PYTHON" bench/python_kernel_twin.py --threads 1 --systems "$SYSTEMS" --format rows >>"$out/rows"
else
  echo "# python3 with torch not found: Python column left empty" >&2
fi

# Best of the rounds per (variant, system, mode): other users' load only ever slows a run down.
echo
echo "trajectory-steps/s, 1 thread, batch 100 (wall clock; per CPU second in brackets), best of $ROUNDS"
awk '{ key = $1 " " $2 " " $3; if (!(key in wall) || $4 > wall[key]) { wall[key] = $4; cpu[key] = $5 } }
  END {
    n = split("dw4 lj13 lj55", systems, " ");
    printf "| system | mode | before | after | after/before | python twin | C++/python |\n|---|---|---|---|---|---|---|\n";
    for (i = 1; i <= n; ++i) for (m = 1; m <= 3; ++m) {
      mode = m == 1 ? "sample" : m == 2 ? "train" : "ais"; s = systems[i];
      a = "after " s " " mode; b = "before " s " " mode; p = "python " s " " mode;
      if (!(a in wall)) continue;
      before = (b in wall) ? sprintf("%.1f (%.1f)", wall[b], cpu[b]) : "";
      ratio = (b in wall) ? sprintf("%.2f", wall[a] / wall[b]) : "";
      py = (p in wall) ? sprintf("%.1f (%.1f)", wall[p], cpu[p]) : "";
      pr = (p in wall) ? sprintf("%.2f", wall[a] / wall[p]) : "";
      printf "| %s | %s | %s | %.1f (%.1f) | %s | %s | %s |\n", s, mode, before, wall[a], cpu[a], ratio, py, pr
    }
  }' "$out/rows"
