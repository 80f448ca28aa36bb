#!/usr/bin/env bash
# Plots path ESS against wall-clock seconds for annealing methods measured at several budgets.
# Input: a text table with one row per run, "METHOD T SECONDS ESS_PERCENT LOG_Z" (other columns
# ignored), e.g. made with `mintjulep sample RUN --method M --steps T ...` under /usr/bin/time.
# Needs gnuplot (Debian gnuplot-nox). Usage: scripts/plot-equal-time.sh TABLE OUT.png [TITLE]
set -euo pipefail
table=${1:?usage: plot-equal-time.sh TABLE OUT.png [TITLE]}
out=${2:?usage: plot-equal-time.sh TABLE OUT.png [TITLE]}
title=${3:-path ESS against wall time}
command -v gnuplot >/dev/null || { echo "plot-equal-time: gnuplot not found; apt-get install gnuplot-nox" >&2; exit 2; }
[ -r "$table" ] || { echo "plot-equal-time: cannot read '$table'" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plots=""
for m in $(awk '!/^#/ && NF >= 4 {print $1}' "$table" | awk '!seen[$0]++'); do
  awk -v m="$m" '$1 == m {print $3, $4, "T=" $2}' "$table" >"$work/$m.dat"
  plots+="${plots:+, }'$work/$m.dat' using 1:2 with linespoints pointtype 7 title '$m', "
  plots+="'$work/$m.dat' using 1:2:3 with labels offset 0,1 notitle"
done
gnuplot <<GP
set terminal pngcairo size 900,600 noenhanced
set output '$out'
set title '$title'
set xlabel 'wall-clock seconds (1 thread)'
set ylabel 'path ESS (%)'
set logscale x
set yrange [0:100]
set grid
set key bottom right
plot $plots
GP
echo "wrote $out"
