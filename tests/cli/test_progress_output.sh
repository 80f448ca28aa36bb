#!/usr/bin/env bash
# Progress and logs of the command line tool on a tiny DW-4 run: --log-json writes one JSON
# object per line (start, info, progress with stage/done/total/rate/eta_s/elapsed_s, result,
# end or error), --quiet prints nothing on standard output, output that is not a terminal never
# holds a carriage return, and on a terminal (when `script` can make one) progress is one
# self-updating line.
set -uo pipefail
bin=${MINTJULEP:?set MINTJULEP to the mintjulep binary}
python=${PYTHON3:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/common.sh"

cat >"$work/tiny.toml" <<'TOML'
system = "dw4"
[prior]
components = 4
[mint]
steps = 20
samples = 128
log_every = 10
eval_samples = 500
[network]
hidden = 8
layers = 1
[julep]
steps = 5
eps = 0.05
[train]
iterations = 3
samples = 16
chunk_steps = 2
log_every = 1
eval_samples = 200
TOML

# check_log FILE COMMAND EXIT_CODE STAGE...: every line of FILE is a JSON object with an event
# and time_s; the first is the start of COMMAND, the last the end (or error) with EXIT_CODE;
# each progress event has the documented fields, each STAGE has one, and its last is complete.
check_log() {
  "$python" - "$@" <<'PY'
import json, sys
path, command, code, stages = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
problems = []
events = []
with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        try:
            e = json.loads(line)
        except ValueError as err:
            sys.exit(f"{path}:{n}: not JSON ({err}): {line!r}")
        if not isinstance(e, dict) or not isinstance(e.get("event"), str) or not isinstance(e.get("time_s"), (int, float)):
            sys.exit(f"{path}:{n}: no event or time_s: {line!r}")
        events.append(e)
if not events:
    sys.exit(f"{path}: empty")
if events[0]["event"] != "start" or events[0].get("command") != command or not isinstance(events[0].get("args"), list):
    problems.append(f"first event is not the start of {command}: {events[0]}")
last = events[-1]
if last["event"] != ("end" if code == 0 else "error") or last.get("exit_code") != code:
    problems.append(f"last event is not the end with exit code {code}: {last}")
number = (int, float)
last_progress = {}
for e in events:
    if e["event"] == "progress":
        for key, kind in [("stage", str), ("unit", str), ("done", int), ("total", int), ("fraction", number),
                          ("elapsed_s", number)]:
            if not isinstance(e.get(key), kind):
                problems.append(f"progress event without {key}: {e}")
        for key in ("rate", "eta_s"):
            if key not in e or not (e[key] is None or isinstance(e[key], number)):
                problems.append(f"progress event without {key}: {e}")
        if not 0 <= e.get("done", -1) <= e.get("total", -1):
            problems.append(f"done outside [0, total]: {e}")
        last_progress[e.get("stage")] = e
for stage in stages:
    if stage not in last_progress:
        problems.append(f"no progress event of stage '{stage}' (stages: {sorted(last_progress)})")
    elif last_progress[stage]["done"] != last_progress[stage]["total"]:
        problems.append(f"the last progress event of '{stage}' is not complete: {last_progress[stage]}")
    elif last_progress[stage]["eta_s"] != 0 or not isinstance(last_progress[stage]["rate"], number):
        problems.append(f"a complete stage has eta_s 0 and a rate: {last_progress[stage]}")
if problems:
    sys.exit("\n".join(problems))
PY
}

# json_get FILE EVENT KEY...: prints the value at KEY... of the last EVENT event.
json_get() {
  "$python" - "$@" <<'PY'
import json, sys
path, event, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
found = [e for e in map(json.loads, open(path, encoding="utf-8")) if e["event"] == event]
value = found[-1]
for k in keys:
    value = value[k]
print(value if not isinstance(value, (dict, list)) else json.dumps(value))
PY
}

no_carriage_return() {  # FILE...
  for f in "$@"; do
    if grep -q $'\r' "$f"; then fail "'\\r' in non-terminal output $f"; fi
  done
}

# Train with a JSON log, output to files (not a terminal).
"$bin" train "$work/tiny.toml" --out "$work/run" --seed 1 --threads 1 --log-json "$work/train.jsonl" \
  >"$work/train.out" 2>"$work/train.err" || fail "train exited $?: $(cat "$work/train.err")"
check_log "$work/train.jsonl" train 0 mint "mint eval" "ais baseline" julep "julep eval" || fail "train log"
no_carriage_return "$work/train.out" "$work/train.err"
grep -q "mint step" "$work/train.out" || fail "train printed no info lines"
grep -q '"event":"info","message":"mint step' "$work/train.jsonl" || fail "info lines missing from the JSON log"
for key in path_ess log_z prior_ess prior_log_z; do
  json_get "$work/train.jsonl" result metrics "$key" >/dev/null || fail "train result lacks metrics.$key"
done
[ "$(json_get "$work/train.jsonl" result run)" = "$work/run" ] || fail "train result names no run folder"

# Sample with the trained kernel and with MALA annealing.
"$bin" sample "$work/run" --num-samples 60 --chunk 20 --out "$work/s.npz" --threads 1 --log-json "$work/sample.jsonl" \
  >"$work/sample.out" 2>"$work/sample.err" || fail "sample exited $?: $(cat "$work/sample.err")"
check_log "$work/sample.jsonl" sample 0 "sample julep" || fail "sample log"
no_carriage_return "$work/sample.out" "$work/sample.err"
[ "$(json_get "$work/sample.jsonl" result num_samples)" = 60 ] || fail "sample result: num_samples"
json_get "$work/sample.jsonl" result path_ess >/dev/null || fail "sample result lacks path_ess"
json_get "$work/sample.jsonl" result log_z >/dev/null || fail "sample result lacks log_z"
[ "$(json_get "$work/sample.jsonl" result outputs)" = "[\"$work/s.npz\"]" ] || fail "sample result: outputs"
"$bin" sample "$work/run" --method mala --steps 4 --num-samples 40 --chunk 20 --out "$work/m.npz" --threads 1 \
  --log-json "$work/mala.jsonl" >/dev/null 2>"$work/mala.err" || fail "mala sample exited $?: $(cat "$work/mala.err")"
check_log "$work/mala.jsonl" sample 0 "anneal mala" || fail "mala log"

# md: progress per step with the mean energy as detail.
"$bin" md --system ala2 --replicas 2 --steps 40 --report-every 10 --out "$work/md.npz" --threads 1 \
  --log-json "$work/md.jsonl" >"$work/md.out" 2>"$work/md.err" || fail "md exited $?: $(cat "$work/md.err")"
check_log "$work/md.jsonl" md 0 md || fail "md log"
no_carriage_return "$work/md.out" "$work/md.err"
json_get "$work/md.jsonl" progress detail | grep -q "^mean U .* kT$" || fail "md progress lacks the mean energy"
[ "$(json_get "$work/md.jsonl" result frames)" = 4 ] || fail "md result: frames"

# --quiet, before or after the subcommand: nothing on standard output or error, files written.
"$bin" --quiet train "$work/tiny.toml" --out "$work/quiet" --stage mint --threads 1 >"$work/q.out" 2>"$work/q.err" ||
  fail "quiet train exited $?"
[ -s "$work/q.out" ] && fail "--quiet train printed: $(head -3 "$work/q.out")"
[ -s "$work/q.err" ] && fail "--quiet train wrote to stderr: $(head -3 "$work/q.err")"
[ -s "$work/quiet/prior.pt" ] && [ -s "$work/quiet/metrics.json" ] || fail "--quiet train wrote no run folder"
"$bin" sample "$work/quiet" --method prior --num-samples 30 --out "$work/q.npz" --threads 1 --quiet \
  --log-json "$work/q.jsonl" >"$work/q.out" 2>"$work/q.err" || fail "quiet sample exited $?"
[ -s "$work/q.out" ] && fail "--quiet sample printed: $(head -3 "$work/q.out")"
[ -s "$work/q.err" ] && fail "--quiet sample wrote to stderr: $(head -3 "$work/q.err")"
[ -s "$work/q.npz" ] || fail "--quiet sample wrote no .npz"
check_log "$work/q.jsonl" sample 0 "sample prior" || fail "the JSON log of a quiet run"
# Errors still reach standard error with --quiet, and end the JSON log.
expect_error "quiet error" "not found" --quiet sample "$work/none" --out "$work/x.npz" --log-json "$work/err.jsonl"
[ -s "$work/expect.out" ] && fail "error run printed on stdout"
check_log "$work/err.jsonl" sample 2 || fail "error log"
json_get "$work/err.jsonl" error message | grep -q "not found" || fail "error event lacks the message"
expect_error "unwritable log" "--log-json: cannot write" energy --system dw4 --in "$work/none.npy" \
  --log-json "$work/no-such-folder/log.jsonl"

# On a terminal: one line redrawn with '\r', ended by a newline (util-linux `script` makes the
# terminal; skipped without it). --quiet draws nothing there either.
if command -v script >/dev/null && script -qec true /dev/null >/dev/null 2>&1; then
  script -qec "'$bin' sample '$work/run' --num-samples 60 --chunk 20 --out '$work/t.npz' --threads 1" /dev/null \
    >"$work/tty.out" 2>&1 </dev/null || fail "sample on a terminal exited $?"
  grep -q $'\rsample julep \[--------------------\]   0%  0/60 samples' "$work/tty.out" ||
    fail "no progress bar drawn at the start on a terminal: $(cat -v "$work/tty.out")"
  grep -q $'\rsample julep \[####################\] 100%  60/60 samples' "$work/tty.out" ||
    fail "the bar is not redrawn in place to 100%: $(cat -v "$work/tty.out")"
  script -qec "'$bin' --quiet sample '$work/run' --num-samples 60 --chunk 20 --out '$work/t.npz' --threads 1" /dev/null \
    >"$work/tty-quiet.out" 2>&1 </dev/null || fail "quiet sample on a terminal exited $?"
  [ -s "$work/tty-quiet.out" ] && fail "--quiet printed on a terminal: $(cat -v "$work/tty-quiet.out")"
else
  echo "note: no 'script' to make a terminal; the terminal checks are skipped"
fi

finish "cli progress"
