#!/usr/bin/env bash
# Draws the two figures of docs/RESULTS.md ("Figures") as PNG with gnuplot (Debian gnuplot-nox);
# the numbers (KDEs, basin weights) come from scripts/figure-data.py (Debian's python3 + numpy).
#
#   docs/figures/dw4.png   DW-4: (a) the Mint prior's particle positions in the anchored frame,
#                          (b) pair-distance densities of weighted annealed samples, the reference
#                          MD and the prior draws, with the pair distances of the prior's means
#   docs/figures/ala2.png  alanine dipeptide: Ramachandran plots of a reference MD run, the Mint
#                          prior's draws and weighted annealed samples, basins labelled
#
# usage: scripts/make-figures.sh [--out DIR] [--work DIR] [--only dw4|ala2] [--threads K] [--smoke]
#          [--dw4-run RUN] [--dw4-prior P.npz] [--dw4-samples S.npz] [--dw4-reference R.npz]
#          [--dw4-label TEXT] [--ala2-run RUN] [--ala2-reference MD.npz] [--ala2-burn-in F]
#          [--ala2-prior P.npz] [--ala2-samples S.npz] [--ala2-label TEXT]
# Every option can also be given as an environment variable: DW4_RUN, DW4_PRIOR, ..., ALA2_LABEL,
# FIGURES_OUT, FIGURES_WORK, FIGURES_ONLY, THREADS; MINTJULEP names the binary (default
# build/mintjulep), PYTHON the interpreter (default /usr/bin/python3).
#
# Inputs: --*-prior are prior draws (`sample RUN --method prior`), --*-samples weighted samples
# (`sample RUN --method mala`, or any `sample` output), --*-reference an `md` trajectory (DW-4:
# default data/dw4-reference.npz), --dw4-run a run folder whose prior.pt gives the component
# means. What is not given is made in --work (default runs/figures) with short runs, reused when
# already there (delete the folder to redo them); with no arguments at all, on one thread (times
# measured on a loaded 2-core machine, about 10 minutes in all):
#   DW-4 (100 s): `train` of configs/dw4.toml with [mint] steps = 100, select_every = 0,
#     eval_samples = 10000 (--stage mint); `sample --method prior --num-samples 100000 --seed 5`;
#     `sample --method mala --steps 50 --num-samples 5000 --seed 7`
#   alanine dipeptide (480 s): `md --system ala2 --replicas 64 --steps 20000
#     --report-every 100 --seed 1` (10 ps per replica; the first 20 frames are dropped);
#     `train` of configs/ala2.toml with [mint] eval_samples = 2000 (--stage mint);
#     `sample --method prior --num-samples 20000 --seed 5`;
#     `sample --method mala --steps 10 --num-samples 500 --chunk 500 --seed 1`
# --smoke: the same pipeline with tiny runs (seconds; tests the script, not the sampler).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '11,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

out=${FIGURES_OUT:-$root/docs/figures}
work=${FIGURES_WORK:-$root/runs/figures}
only=${FIGURES_ONLY:-all}
threads=${THREADS:-1}
smoke=0
dw4_run=${DW4_RUN:-} dw4_prior=${DW4_PRIOR:-} dw4_samples=${DW4_SAMPLES:-}
dw4_reference=${DW4_REFERENCE:-$root/data/dw4-reference.npz} dw4_label=${DW4_LABEL:-}
ala2_run=${ALA2_RUN:-} ala2_reference=${ALA2_REFERENCE:-} ala2_burn_in=${ALA2_BURN_IN:-}
ala2_prior=${ALA2_PRIOR:-} ala2_samples=${ALA2_SAMPLES:-} ala2_label=${ALA2_LABEL:-}
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --dw4-run) dw4_run=$2; shift 2 ;;
    --dw4-prior) dw4_prior=$2; shift 2 ;;
    --dw4-samples) dw4_samples=$2; shift 2 ;;
    --dw4-reference) dw4_reference=$2; shift 2 ;;
    --dw4-label) dw4_label=$2; shift 2 ;;
    --ala2-run) ala2_run=$2; shift 2 ;;
    --ala2-reference) ala2_reference=$2; shift 2 ;;
    --ala2-burn-in) ala2_burn_in=$2; shift 2 ;;
    --ala2-prior) ala2_prior=$2; shift 2 ;;
    --ala2-samples) ala2_samples=$2; shift 2 ;;
    --ala2-label) ala2_label=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "make-figures: unknown argument '$1'" >&2; usage ;;
  esac
done
case $only in all|dw4|ala2) ;; *) echo "make-figures: --only takes dw4, ala2 or all" >&2; exit 2 ;; esac

die() { echo "make-figures: $*" >&2; exit 2; }
command -v gnuplot >/dev/null || die "gnuplot not found; apt-get install gnuplot-nox"
py=${PYTHON:-/usr/bin/python3}
"$py" -c 'import numpy' 2>/dev/null || die "$py with numpy not found; apt-get install python3-numpy"
mj=${MINTJULEP:-$root/build/mintjulep}
need_binary() { [ -x "$mj" ] || die "$1 needs the mintjulep binary ($mj; set MINTJULEP or build first)"; }
for f in "$dw4_run" "$dw4_prior" "$dw4_samples" "$dw4_reference" "$ala2_run" "$ala2_reference" \
         "$ala2_prior" "$ala2_samples"; do
  [ -z "$f" ] || [ -e "$f" ] || die "cannot read '$f'"
done
mkdir -p "$out" "$work"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run LOG CMD...: a mintjulep command, its output kept in $work/LOG; says what it runs.
run() {
  local log=$1; shift
  echo "make-figures: mintjulep $* (log: $work/$log)"
  local start=$SECONDS
  "$mj" --threads "$threads" "$@" >"$work/$log" 2>&1 || { tail -5 "$work/$log" >&2; die "mintjulep $1 failed"; }
  local summary
  summary=$(grep -E "ESS|energy autocorrelation over" "$work/$log" | tail -1 || true)
  echo "make-figures:   $((SECONDS - start)) s: ${summary:-$(tail -n 1 "$work/$log")}"
}
# quick_config SRC DST KEY=VALUE...: SRC with keys of its [mint] section replaced.
quick_config() {
  local src=$1 dst=$2; shift 2
  awk -v sets="$*" '
    BEGIN { n = split(sets, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] } }
    /^\[/ { sec = $0 }
    sec == "[mint]" && match($0, /^[a-z_]+ *=/) {
      k = $1; if (k in v) { print k " = " v[k]; next }
    }
    { print }' "$src" >"$dst"
}

if [ "$smoke" -eq 1 ]; then
  dw4_mint="steps=0 eval_samples=500" dw4_draws=2000 dw4_chains=200 dw4_steps=5
  ala2_md="--replicas 4 --steps 400 --report-every 20" ala2_burn_in=${ala2_burn_in:-2}
else
  dw4_mint="steps=100 select_every=0 eval_samples=10000" dw4_draws=100000 dw4_chains=5000 dw4_steps=50
  ala2_md="--replicas 64 --steps 20000 --report-every 100" ala2_burn_in=${ala2_burn_in:-20}
fi

if [ "$only" != ala2 ]; then
  if [ -z "$dw4_prior" ] || [ -z "$dw4_samples" ]; then
    if [ -z "$dw4_run" ]; then
      dw4_run=$work/dw4-run
      if [ ! -f "$dw4_run/prior.pt" ]; then
        need_binary "training the DW-4 prior"
        quick_config "$root/configs/dw4.toml" "$work/dw4.toml" $dw4_mint
        run dw4-train.log train "$work/dw4.toml" --stage mint --seed 0 --out "$dw4_run"
      fi
    fi
    if [ -z "$dw4_prior" ]; then
      dw4_prior=$work/dw4-prior.npz
      [ -f "$dw4_prior" ] || { need_binary "drawing from the DW-4 prior"
        run dw4-prior.log sample "$dw4_run" --method prior --num-samples $dw4_draws --seed 5 --out "$dw4_prior"; }
    fi
    if [ -z "$dw4_samples" ]; then
      dw4_samples=$work/dw4-mala.npz
      dw4_label=${dw4_label:-MintJulep: prior + MALA-AIS (T = $dw4_steps)}
      [ -f "$dw4_samples" ] || { need_binary "annealing DW-4 samples"
        run dw4-mala.log sample "$dw4_run" --method mala --steps $dw4_steps --num-samples $dw4_chains \
          --seed 7 --out "$dw4_samples"; }
    fi
  fi
  run_args=()
  [ -z "$dw4_run" ] || run_args=(--run "$dw4_run")
  ref_args=()
  [ -z "$dw4_reference" ] || ref_args=(--reference "$dw4_reference")
  "$py" "$root/scripts/figure-data.py" dw4 --prior "$dw4_prior" --samples "$dw4_samples" \
    "${ref_args[@]}" "${run_args[@]}" --out "$tmp/dw4" >/dev/null
  label=${dw4_label:-MintJulep samples}
  cat >"$tmp/dw4.gp" <<'GP'
load dir.'/vars.gp'
set terminal pngcairo size 1400,620 enhanced font 'DejaVu Sans,12'
set output out
set multiplot layout 1,2 title "DW-4 (4 particles in 2D): the Mint prior and annealed samples" font ',14'

set title sprintf("(a) Mint prior q: particle positions in the anchored frame\n{/*0.85 %d draws; " \
  . "KDE of particles 1-3, each draw turned so that particle 1 lies on +x}", prior_count)
set size ratio -1
set xrange [-extent:extent]
set yrange [-extent:extent]
set xlabel 'x_1 (along e_1, from the anchor to particle 1)'
set ylabel 'x_2 (along e_2)'
set cblabel 'log_{10} density / peak'
set cbrange [-decades:0]
set palette defined (0 '#fff5b0', 0.25 '#fde725', 0.5 '#5ec962', 0.7 '#21918c', 0.85 '#3b528b', 1 '#440154')
set key top left Left reverse box opaque samplen 1 font ',10' width 1
set grid front lc rgb '#b0b0b0' dt 3
# the parts that need RUN's prior or a reference, as macros (empty without them)
means = !has_modes ? "" : "dir.'/means.dat' using 1:2 with points pt 6 ps 1 lw 1.5 lc rgb '#d62728' " \
  . "title 'component means',"
plot dir.'/frame.dat' using 1:2:3 with image notitle, @means \
     '+' using (0):(0) every ::0::0 with points pt 3 ps 2.5 lw 3 lc rgb 'black' title 'anchor (particle 0)'

unset colorbox
set size noratio
set title sprintf("(b) Pair distances, %s\n{/*0.85 %d samples, importance-weighted (ESS %.1f %%)}", \
  samples_label, samples_count, samples_ess)
top = dist_max * 1.4
set xrange [1.5:7]
set yrange [0:top]
set xlabel 'pair distance d_{ij}'
set ylabel 'density (all 6 pairs pooled)'
set key top center Left reverse box opaque font ',10' width 1
set grid lc rgb '#d0d0d0' dt 3
# one vertical line per pair distance of each component mean, more opaque for heavier components
alpha(w) = int(255 * (1 - (w > 0.3 ? 1 : 0.15 + 0.85 * w / 0.3)))
modes = !has_modes ? "" : "dir.'/modes.dat' using 1:(0):(0):(top):(alpha($2) * 16777216 + 14034728) " \
  . "with vectors nohead lc rgb variable lw 1.5 notitle, keyentry with lines lc rgb '#d62728' lw 1.5 " \
  . "title sprintf('prior component means (K = %d; darker: heavier)', components),"
reference = !has_reference ? "" : "dir.'/dist.dat' using 1:3 with lines lw 5 lc rgb '#801f77b4' " \
  . "title sprintf('reference MD (%d configurations)', reference_count),"
plot @modes \
     dir.'/dist.dat' using 1:4 with lines lw 2 dt 2 lc rgb '#ff7f0e' title 'Mint prior q (draws, unweighted)', \
     @reference \
     dir.'/dist.dat' using 1:2 with lines lw 2 lc rgb 'black' title samples_label.', weighted'
unset multiplot
GP
  gnuplot -e "dir='$tmp/dw4'; out='$out/dw4.png'; samples_label='${label//\'/}'" "$tmp/dw4.gp"
  echo "make-figures: wrote $out/dw4.png"
fi

if [ "$only" != dw4 ]; then
  if [ -z "$ala2_reference" ]; then
    ala2_reference=$work/ala2-md.npz
    [ -f "$ala2_reference" ] || { need_binary "the alanine dipeptide MD reference"
      run ala2-md.log md --system ala2 $ala2_md --seed 1 --out "$ala2_reference"; }
  fi
  if [ -z "$ala2_prior" ] || [ -z "$ala2_samples" ]; then
    if [ -z "$ala2_run" ]; then
      ala2_run=$work/ala2-run
      if [ ! -f "$ala2_run/prior.pt" ]; then
        need_binary "building the alanine dipeptide prior"
        if [ "$smoke" -eq 1 ]; then
          # a small prior: two rotamers, no methyl averaging, no evaluation to speak of
          quick_config "$root/configs/ala2.toml" "$tmp/ala2-mint.toml" eval_samples=100 steps=0
          sed -e 's/^components = .*/components = 2/' -e 's/^starts_per_component = [0-9]*/starts_per_component = 1/' \
              -e 's/^rotor_symmetry = true/rotor_symmetry = false/' "$tmp/ala2-mint.toml" >"$work/ala2.toml"
        else
          quick_config "$root/configs/ala2.toml" "$work/ala2.toml" eval_samples=2000
        fi
        run ala2-train.log train "$work/ala2.toml" --stage mint --seed 0 --out "$ala2_run"
      fi
    fi
    if [ -z "$ala2_prior" ]; then
      ala2_prior=$work/ala2-prior.npz
      n=20000; [ "$smoke" -eq 0 ] || n=200
      [ -f "$ala2_prior" ] || { need_binary "drawing from the alanine dipeptide prior"
        run ala2-prior.log sample "$ala2_run" --method prior --num-samples $n --seed 5 --out "$ala2_prior"; }
    fi
    if [ -z "$ala2_samples" ]; then
      ala2_samples=$work/ala2-mala.npz
      n=500 t=10; [ "$smoke" -eq 0 ] || { n=20; t=2; }
      ala2_label=${ala2_label:-MintJulep: prior + MALA-AIS (T = $t)}
      [ -f "$ala2_samples" ] || { need_binary "annealing alanine dipeptide samples"
        run ala2-mala.log sample "$ala2_run" --method mala --steps $t --num-samples $n --chunk $n --seed 1 \
          --out "$ala2_samples"; }
    fi
  fi
  "$py" "$root/scripts/figure-data.py" ala2 --reference "$ala2_reference" --burn-in "$ala2_burn_in" \
    --prior "$ala2_prior" --samples "$ala2_samples" --out "$tmp/ala2" >/dev/null
  label=${ala2_label:-MintJulep samples}
  cat >"$tmp/ala2.gp" <<'GP'
load dir.'/vars.gp'
set terminal pngcairo size 1680,640 enhanced font 'DejaVu Sans,12'
set output out
set multiplot title "Alanine dipeptide (vacuum, 300 K): Ramachandran plots, D forms mirrored to L" font ',14'
set size ratio -1
set xrange [-180:180]
set yrange [-180:180]
set xtics -180,90,180
set ytics -180,90,180
set mxtics 2
set mytics 2
set xlabel 'φ (degrees)'
set ylabel 'ψ (degrees)' offset 1,0
set cbrange [0:fmax]
set cblabel 'free energy -ln(p / p_{max}) (kT); white: above'
set palette defined (0 '#440154', 0.15 '#3b528b', 0.35 '#21918c', 0.6 '#5ec962', 0.85 '#fde725', 1 '#fff5b0')
set grid front lc rgb '#909090' dt 3
unset key
# the basins of `mintjulep ramachandran`: φ >= 0 alpha_L/C7ax; φ < 0: alpha_R for -120 <= ψ < 50,
# C7eq/C5 (with P_II) otherwise
set arrow 1 from 0,-180 to 0,180 nohead front lc rgb 'black' dt 2 lw 1.2
set arrow 2 from -180,-120 to 0,-120 nohead front lc rgb 'black' dt 2 lw 1.2
set arrow 3 from -180,50 to 0,50 nohead front lc rgb 'black' dt 2 lw 1.2
set style textbox opaque fillcolor rgb '#ffffff' margins 1,1 noborder
set label 11 'C5' at -150,168 center front font ',10' boxed
set label 12 'C7eq' at -140,68 center front font ',10' boxed
set label 13 'P_{II}' at -60,160 center front font ',10' boxed
set label 14 'α_R' at -35,-35 center front font ',10' boxed
set label 15 'α_L' at 95,45 center front font ',10' boxed
set label 16 'C7ax' at 110,-55 center front font ',10' boxed
basins(c, a, l) = sprintf("weights: C7eq/C5 %.3f   α_R %.3f   α_L/C7ax %.4f", c, a, l)
W = 0.29; L0 = 0.05
set tmargin at screen 0.83
set bmargin at screen 0.13
do for [i = 1:3] {
  name = word('reference prior samples', i)
  if (i == 1) { head = "(a) Reference MD"; \
    sub = sprintf("%d replicas x %d frames (first %d dropped)", reference_replicas, reference_frames, reference_burn_in); \
    b = basins(reference_c7eq_c5, reference_alpha_r, reference_alpha_l) }
  if (i == 2) { head = "(b) Mint prior q"; \
    sub = sprintf("%d draws, unweighted (as weighted samples: ESS %.2f %%)", prior_count, prior_ess); \
    b = basins(prior_c7eq_c5, prior_alpha_r, prior_alpha_l) }
  if (i == 3) { head = "(c) ".samples_label; \
    sub = sprintf("%d samples, importance-weighted (ESS %.1f %%)", samples_count, samples_ess); \
    b = basins(samples_c7eq_c5, samples_alpha_r, samples_alpha_l) }
  set title head."\n{/*0.85 ".sub."}\n{/*0.85 ".b."}"
  set lmargin at screen L0 + (i - 1) * W
  set rmargin at screen L0 + (i - 1) * W + W - 0.04
  if (i == 3) { set colorbox user origin screen 0.93, screen 0.18 size screen 0.012, screen 0.6 } else { unset colorbox }
  plot dir.'/rama-'.name.'.dat' using 1:2:3 with image
}
unset multiplot
GP
  gnuplot -e "dir='$tmp/ala2'; out='$out/ala2.png'; samples_label='${label//\'/}'" "$tmp/ala2.gp"
  echo "make-figures: wrote $out/ala2.png"
fi
