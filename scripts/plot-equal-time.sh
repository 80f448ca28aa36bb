#!/usr/bin/env bash
# Plots path ESS against wall-clock seconds for annealing methods measured at several budgets.
# Input: a text table with one row per run, "METHOD T SECONDS ESS_PERCENT LOG_Z [CHAINS]" (other
# columns ignored), e.g. made with `mintjulep sample RUN --method M --steps T ...` under
# /usr/bin/time. With --effective the y axis is the number of effective samples,
# ESS_PERCENT x CHAINS / 100 (log scale): methods run with different sample counts compare at
# equal time on it. Needs gnuplot (Debian gnuplot-nox).
# Usage: scripts/plot-equal-time.sh [--effective] TABLE OUT.png [TITLE]
set -euo pipefail
usage="usage: plot-equal-time.sh [--effective] TABLE OUT.png [TITLE]"
effective=0
if [ "${1:-}" = "--effective" ]; then effective=1; shift; fi
table=${1:?$usage}
out=${2:?$usage}
title=${3:-path ESS against wall time}
command -v gnuplot >/dev/null || { echo "plot-equal-time: gnuplot not found; apt-get install gnuplot-nox" >&2; exit 2; }
[ -r "$table" ] || { echo "plot-equal-time: cannot read '$table'" >&2; exit 2; }
if [ $effective = 1 ] && awk '!/^#/ && NF >= 4 && NF < 6 {bad = 1} END {exit !bad}' "$table"; then
  echo "plot-equal-time: --effective needs a sixth column CHAINS in every row of '$table'" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plots=""
for m in $(awk '!/^#/ && NF >= 4 {print $1}' "$table" | awk '!seen[$0]++'); do
  awk -v m="$m" -v e=$effective '$1 == m {print $3, (e ? $4 * $6 / 100 : $4), (e ? "T=" $2 ",n=" $6 : "T=" $2)}' \
    "$table" >"$work/$m.dat"
  plots+="${plots:+, }'$work/$m.dat' using 1:2 with linespoints pointtype 7 title '$m', "
  plots+="'$work/$m.dat' using 1:2:3 with labels offset 0,1 notitle"
done
if [ $effective = 1 ]; then
  yaxis="set ylabel 'effective samples (ESS x chains)'
set logscale y"
else
  yaxis="set ylabel 'path ESS (%)'
set yrange [0:100]"
fi
gnuplot <<GP
set terminal pngcairo size 900,600 noenhanced
set output '$out'
set title '$title'
set xlabel 'wall-clock seconds (1 thread)'
$yaxis
set logscale x
set grid
set key bottom right
plot $plots
GP
echo "wrote $out"
