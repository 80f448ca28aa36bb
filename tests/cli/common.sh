# Shared helpers of the command line tests: sourced, not run.
# Needs $bin (the mintjulep binary) and $work (a scratch folder); counts failures.
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect_error WHAT NEEDLE ARGS...: mintjulep ARGS must exit 2 with exactly one stderr line
# containing NEEDLE.
expect_error() {
  local what=$1 needle=$2; shift 2
  "$bin" "$@" >"$work/expect.out" 2>"$work/expect.err"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "$what: exit code $rc, expected 2"
  [ "$(wc -l <"$work/expect.err")" -eq 1 ] || fail "$what: stderr is not one line: $(cat "$work/expect.err")"
  grep -qF -- "$needle" "$work/expect.err" || fail "$what: stderr lacks '$needle': $(cat "$work/expect.err")"
}

finish() {
  if [ "$failures" -eq 0 ]; then echo "$1: all checks passed"; else echo "$1: $failures failures"; exit 1; fi
}
