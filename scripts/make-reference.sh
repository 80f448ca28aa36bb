#!/usr/bin/env bash
# Reference samples of a particle system by Langevin dynamics (mintjulep md), with a length
# chosen from the measured integrated autocorrelation time of the energy:
#
#   1. pilot: R replicas from a minimum-energy structure, doubled in length (--resume) until its
#      second half is at least 50 autocorrelation times long;
#   2. production: a fresh run from the pilot's last frames (equilibrated, new velocities and
#      seed), one frame saved every tau steps (the pilot's tau), extended until its own tau gives
#      the requested effective size R F / tau;
#   3. the tau and effective size of the production run (mintjulep metrics), and its SHA-256.
#
# Writes OUT/SYSTEM-reference.npz (positions (F, R, N, n), energies (F, R); no burn-in needed),
# OUT/SYSTEM-reference.json (tau, effective size, ...), OUT/SYSTEM-reference.txt (the
# commands and settings) and OUT/SYSTEM-reference.npz.sha256 (check with sha256sum -c from OUT).
#
# Usage: scripts/make-reference.sh SYSTEM [--out DIR] [--effective-size N] [--replicas R]
#                                  [--seed S] [--threads K] [--smoke]
#   SYSTEM: dw4, lj13, lj13-half, lj55 or lj55-half (kT = 1, reduced units). --smoke: a few seconds, to test the script.
set -euo pipefail
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage 0 ;; esac
system=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MINTJULEP:-$root/build/mintjulep}
out=references
replicas=64
target=10000
seed=0
threads=1
smoke=0
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --effective-size) target=$2; shift 2 ;;
    --replicas) replicas=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "make-reference.sh: unknown option '$1'" >&2; usage ;;
  esac
done
[ -x "$bin" ] || { echo "make-reference.sh: no mintjulep binary at $bin (build first, or set MINTJULEP)" >&2; exit 2; }

# Per system: time step (reduced units; angular frequencies of the stiffest pair vibration are
# about 6 for dw4 and 15 for the Lennard-Jones clusters, so omega dt <= 0.03), friction 1, the
# pilot's first length and saved-frame spacing, and a starting structure.
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case $system in
  dw4) dt=0.005; pilot_steps=40000; pilot_every=20; start=$work/dw4-start.xyz
    head -n 6 "$root/examples/dw4.xyz" >"$start" ;;  # the first frame: a square of side 4
  lj13|lj13-half) dt=0.002; pilot_steps=40000; pilot_every=20; start=$work/lj13-start.xyz
    head -n 15 "$root/examples/lj13-icosahedron.xyz" >"$start" ;;  # the first frame: the minimum
  lj55|lj55-half)
    dt=0.002; pilot_steps=40000; pilot_every=20; start=$work/lj55-start.xyz
    # 55 sites of a simple cubic lattice at the pair distance 1.12 (the pilot melts and
    # equilibrates it).
    awk 'BEGIN { print 55; print "lj55 start: simple cubic lattice, spacing 1.12"; k = 0
                 for (i = 0; i < 4; i++) for (j = 0; j < 4; j++) for (l = 0; l < 4; l++)
                   if (k++ < 55) printf "X %.4f %.4f %.4f\n", 1.12 * i, 1.12 * j, 1.12 * l }' >"$start" ;;
  *) echo "make-reference.sh: unknown system '$system' (dw4, lj13, lj13-half, lj55 or lj55-half)" >&2; exit 2 ;;
esac
max_pilot_steps=$((pilot_steps * 16))
if [ "$smoke" -eq 1 ]; then
  replicas=4; target=50; pilot_steps=400; pilot_every=10; max_pilot_steps=800
fi

name=$out/$system-reference
log=$name.txt
# A value from the JSON written by mintjulep metrics (nlohmann's dump: one "key": value per line).
json_value() { sed -n "s/^ *\"$2\": \\([^,]*\\),\\{0,1\\}$/\\1/p" "$1"; }
run() { echo "\$ $*" >>"$log"; "$@" >>"$log.run" 2>&1 || { cat "$log.run" >&2; exit 1; }; }
: >"$log"
: >"$log.run"
started=$(date +%s)
{
  echo "# $system reference: scripts/make-reference.sh $system --replicas $replicas --effective-size $target --seed $seed"
  echo "# mintjulep $(cd "$root" && git describe --always --dirty 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >>"$log"

common=(--system "$system" --replicas "$replicas" --dt "$dt" --friction 1 --threads "$threads")
pilot=$work/pilot.npz
steps=$pilot_steps
run "$bin" md "${common[@]}" --in "$start" --steps "$steps" --report-every "$pilot_every" --seed "$seed" --out "$pilot"
while :; do
  frames=$((steps / pilot_every))
  run "$bin" metrics --reference "$pilot" --burn-in $((frames / 2)) --json "$work/pilot.json"
  tau=$(json_value "$work/pilot.json" reference_energy_tau)
  long=$(json_value "$work/pilot.json" reference_long_enough)
  echo "# pilot: $steps steps, tau $tau frames of $pilot_every steps over its second half (>= 50 tau: $long)" >>"$log"
  if [ "$long" = true ] || [ "$steps" -ge "$max_pilot_steps" ]; then break; fi
  steps=$((steps * 2))
  run "$bin" md "${common[@]}" --steps "$steps" --report-every "$pilot_every" --seed "$seed" --out "$pilot" --resume
done
[ "$long" = true ] || echo "# warning: the pilot's second half is shorter than 50 tau; tau may be underestimated" >>"$log"

# Production: one frame every tau (of the pilot) steps, which stores the fewest frames per
# effective sample for little extra computation; extended (--resume) until R F / tau >= target,
# tau measured on the production run itself.
tau_steps=$(awk -v t="$tau" -v e="$pilot_every" 'BEGIN { printf "%.0f", t * e }')
every=$(awk -v s="$tau_steps" -v e="$pilot_every" 'BEGIN { print (s > e) ? s : e }')
frames=$(awk -v n="$target" -v r="$replicas" 'BEGIN { f = 1.5 * n / r; f = (f == int(f)) ? f : int(f) + 1; print (f < 50) ? 50 : f }')
prod=(--report-every "$every" --seed $((seed + 1)) --out "$name.npz")
run "$bin" md "${common[@]}" --in "$pilot" --steps $((frames * every)) "${prod[@]}"
for attempt in 1 2 3 4; do
  run "$bin" metrics --reference "$name.npz" --json "$name.json"
  tau=$(json_value "$name.json" reference_energy_tau)
  tau_se=$(json_value "$name.json" reference_energy_tau_se)
  ess=$(json_value "$name.json" reference_effective_size)
  echo "# production: $frames frames, tau $tau frames of $every steps, effective size $ess" >>"$log"
  more=$(awk -v n="$target" -v e="$ess" -v f="$frames" 'BEGIN { if (e >= n) print 0; else print int(f * (1.05 * n / e - 1)) + 1 }')
  if [ "$more" -eq 0 ] || [ "$smoke" -eq 1 ] || [ "$attempt" -eq 4 ]; then break; fi
  frames=$((frames + more))
  run "$bin" md "${common[@]}" --steps $((frames * every)) "${prod[@]}" --resume
done
(cd "$out" && sha256sum "$system-reference.npz" >"$system-reference.npz.sha256")
elapsed=$(($(date +%s) - started))
summary=$(awk -v s="$system" -v f="$frames" -v r="$replicas" -v e="$every" -v dt="$dt" -v t="$tau" -v se="$tau_se" \
  -v n="$ess" -v g="$target" -v w="$elapsed" 'BEGIN {
  printf "%s reference: %d frames x %d replicas, one every %d steps of dt %s; energy tau %.3f +- %.3f frames (%.0f steps), effective size %.0f (target %d); %d s wall time",
         s, f, r, e, dt, t, se, t * e, n, g, w }')
echo "# $summary" >>"$log"
cat "$log.run" >>"$log" && rm -f "$log.run"
# The log names the scratch folder TMP and the files of this tree relative to it.
sed -i "s|$work|TMP|g; s|$bin|mintjulep|g; s|$root/||g" "$log"
echo "$summary"
echo "wrote $name.npz, $name.json, $name.txt, $name.npz.sha256"
