#!/usr/bin/env bash
# Same seed, --threads 1: `train` (Mint stage, a few kernel iterations, MALA annealing), `sample`
# (trained kernel and MALA, with PDB/DCD/XYZ copies) and `md` run twice into two folders give
# byte-identical files. metrics.json holds wall times (keys seconds and *_seconds); it is compared
# without them. A different seed must change the files, so the comparison can fail.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"
python=$(command -v python3) || { echo "SKIP: python3 is needed to compare metrics.json"; exit 77; }

# configs/dw4.toml with a tiny budget: the gaussian prior on the harmonic basins, averaged over
# the relabellings, kept by ESS selection; 2 kernel iterations; MALA annealing.
cat >"$work/tiny.toml" <<'TOML'
system = "dw4"
seed = 0
[prior]
family = "gaussian"
components = 4
init = "harmonic"
permutation_symmetry = true
starts_per_component = 2
[mint]
steps = 20
samples = 128
learning_rate = 0.02
beta_start = 1.0
warmup_steps = 0
log_every = 10
objective = "langevin"
select_every = 10
eval_samples = 300
[network]
hidden = 8
layers = 1
rank = 2
[julep]
steps = 5
eps = 0.5
[train]
iterations = 2
samples = 16
chunk_steps = 2
log_every = 1
eval_samples = 100
[anneal]
method = "mala"
steps = 5
moves = 1
TOML

# run DIR SEED: the whole pipeline into DIR.
run() {
  local dir=$1 seed=$2
  mkdir -p "$dir"
  "$bin" train "$work/tiny.toml" --out "$dir/run" --seed "$seed" --threads 1 >"$dir/train.log" 2>&1 ||
    fail "train into $dir exited $?: $(tail -3 "$dir/train.log")"
  "$bin" sample "$dir/run" --num-samples 60 --chunk 25 --seed "$seed" --out "$dir/s.npz" \
    --trajectory "$dir/s.pdb" --trajectory "$dir/s.dcd" --trajectory "$dir/s.xyz" --threads 1 \
    >"$dir/sample.log" 2>&1 || fail "sample in $dir exited $?: $(tail -3 "$dir/sample.log")"
  "$bin" sample "$dir/run" --method mala --steps 5 --num-samples 60 --seed "$seed" --resample 30 \
    --out "$dir/mala.npz" --threads 1 >"$dir/mala.log" 2>&1 || fail "mala sample in $dir exited $?"
  printf '4\n\nX 0 0 0\nX 4 0 0\nX 4 4 0\nX 0 4 0\n' >"$dir/start.xyz"
  "$bin" md --system dw4 --in "$dir/start.xyz" --replicas 3 --steps 60 --report-every 10 --dt 0.005 \
    --seed "$seed" --out "$dir/md.npz" --trajectory "$dir/md.pdb" --threads 1 >"$dir/md.log" 2>&1 ||
    fail "md in $dir exited $?"
  rm -f "$dir"/*.log
}

# same_files A B: every file under A has a twin under B with the same bytes (metrics.json
# without its wall times), and B has no others. Prints the differing files.
same_files() {
  local a=$1 b=$2 differ=0 f
  [ "$(cd "$a" && find . -type f | sort)" = "$(cd "$b" && find . -type f | sort)" ] || { echo "file lists differ"; differ=1; }
  while read -r f; do
    if [ "$(basename "$f")" = metrics.json ]; then
      "$python" - "$a/$f" "$b/$f" <<'PY' || { echo "$f"; differ=1; }
import json, sys
def strip(path):
    m = json.load(open(path))
    def walk(v):
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items() if k != "seconds" and not k.endswith("_seconds")}
        return [walk(x) for x in v] if isinstance(v, list) else v
    return walk(m)
sys.exit(strip(sys.argv[1]) != strip(sys.argv[2]))
PY
    else
      cmp -s "$a/$f" "$b/$f" || { echo "$f"; differ=1; }
    fi
  done < <(cd "$a" && find . -type f | sort)
  return $differ
}

run "$work/a" 5
run "$work/b" 5
run "$work/c" 6
expected="run/config.toml run/metrics.json run/prior.pt run/sampler.pt s.npz s.pdb s.dcd s.xyz mala.npz md.npz md.pdb"
for f in $expected; do [ -s "$work/a/$f" ] || fail "$f was not written"; done
# The seconds are there, so the comparison has something to leave out.
grep -q '"train_seconds"' "$work/a/run/metrics.json" || fail "metrics.json lacks train_seconds"
diffs=$(same_files "$work/a" "$work/b") || fail "the same seed gave different files: $(echo $diffs)"
diffs=$(same_files "$work/a" "$work/c") && fail "seeds 5 and 6 gave the same files"
# Every output depends on the seed (config.toml is a copy of the config, the same for both).
for f in $expected; do
  [ "$f" = run/config.toml ] && continue
  grep -qx "./$f" <<<"$diffs" || fail "$f does not depend on the seed"
done
finish "determinism"
