# Shared by the GPU scripts (sourced, not run): time-limited stages under one time budget.
# The caller sets OUT (an existing folder) and budget (seconds), then calls stages_begin.
log() { echo "$*" | tee -a "$summary"; }
now() { date +%s.%N; }
# Seconds a stage may take: its own limit, but never past the budget (10 s kept in reserve).
limit() {
  local left=$((budget - ($(date +%s) - start) - 10))
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}
# stage NAME LIMIT LOG COMMAND...: runs COMMAND with a time limit, appending to LOG; records
# the exit status and wall time.
stage() {
  local name=$1 max; max=$(limit "$2"); local out=$3; shift 3
  if [ "$max" -le 5 ]; then log "SKIP  $name: the time budget is spent"; return 1; fi
  echo "=== $name (limit ${max}s): $*" >>"$out"
  local t0 t1 rc
  t0=$(now)
  timeout --kill-after=10 "$max" "$@" >>"$out" 2>&1
  rc=$?
  t1=$(now)
  local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  echo "$name: ${secs} s wall, exit $rc" >>"$timing"
  if [ "$rc" -eq 0 ]; then log "OK    $name (${secs} s)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then log "TIME  $name: stopped after ${max} s"
  else log "FAIL  $name (exit $rc, ${secs} s)"; fi
  return "$rc"
}


# stages_begin NAME [WHAT]: starts the clock; empties summary.txt, timing.log and runs.log in
# $OUT; sets bin (BUILD_DIR, default build-cuda) and a scratch folder work; logs the commit,
# machine and GPU.
stages_begin() {
  start=$(date +%s)
  summary=$OUT/summary.txt
  timing=$OUT/timing.log
  runs=$OUT/runs.log
  : >"$summary"; : >"$timing"; : >"$runs"
  bin=${BUILD_DIR:-build-cuda}
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  log "$1 $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(hostname), $(nproc) cores, $(date -u +%FT%TZ)${2:+, $2}"
  if command -v nvidia-smi >/dev/null; then
    log "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
  fi
}
