#!/usr/bin/env bash
# Plots path ESS against wall-clock seconds for annealing methods measured at several budgets.
# Input: a text table with one row per run, "METHOD T SECONDS ESS_PERCENT LOG_Z [CHAINS [LABEL]]",
# e.g. made with `mintjulep sample RUN --method M --steps T ...` under /usr/bin/time; LABEL (say
# "it=50" for a trained kernel's iterations) replaces the point's "T=..." label. With --effective
# the y axis is the number of effective samples, ESS_PERCENT x CHAINS / 100 (log scale): methods
# run with different sample counts compare at equal time on it. Needs gnuplot (Debian gnuplot-nox).
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
i=0
for m in $(awk '!/^#/ && NF >= 4 {print $1}' "$table" | awk '!seen[$0]++'); do
  awk -v m="$m" -v e=$effective '$1 == m {label = NF >= 7 ? $7 : "T=" $2
   print $3, (e ? $4 * $6 / 100 : $4), (e ? label ",n=" $6 : label)}' \
    "$table" >"$work/$m.dat"
  i=$((i + 1))  # one colour and point shape per method, its labels in the same colour
  plots+="${plots:+, }'$work/$m.dat' using 1:2 with linespoints linetype $i pointtype $((4 + i)) pointsize 1.5 title '$m', "
  plots+="'$work/$m.dat' using 1:2:3 with labels textcolor linetype $i offset 0,1 notitle"
done
if [ $effective = 1 ]; then
  yaxis="set ylabel 'effective samples (ESS x chains)'
set logscale y"
else
  yaxis="set ylabel 'path ESS (%)'
set yrange [0:100]"
fi
gnuplot <<GP
set terminal pngcairo size 1000,700 noenhanced
do for [k = 1:8] { set linetype k linewidth 1.5 linecolor rgb word("#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #8c564b #e377c2 #17becf", k) }
set output '$out'
set title '$title'
set xlabel 'wall-clock seconds (1 thread)'
$yaxis
set logscale x
set grid
set key outside top center horizontal maxrows 3
plot $plots
GP
echo "wrote $out"
