#!/bin/bash
# Runs the test suites and prints PASS/FAIL/SKIP per test and a summary.
# Usage: scripts/run-tests.sh BUILD_DIR [unit|bpf|e2e ...]   (default: all)
# FS_REQUIRE_ALL=1 (set by .ci/run): a skipped test fails the run (CI runs as root with
# every package installed, so a skip there means something is broken).
set -u
build=${1:?build dir}
shift
suites=${*:-unit bpf e2e}
pass=0 fail=0 skip=0 failed=""
logdir="$build/test-logs"
mkdir -p "$logdir"

run_one() { # name command...
	local name=$1 rc start end
	shift
	mkdir -p "$(dirname "$logdir/$name.log")"
	start=$(date +%s)
	"$@" >"$logdir/$name.log" 2>&1
	rc=$?
	end=$(date +%s)
	# cmocka's own summary lines stay visible.
	grep -E '^\[ *(PASSED|FAILED|SKIPPED|==========) *\]' "$logdir/$name.log" | sed "s/^/    /"
	if [ $rc -eq 0 ]; then
		echo "PASS $name ($((end - start))s)"; pass=$((pass + 1))
	elif [ $rc -eq 77 ] && [ "${FS_REQUIRE_ALL:-0}" != 1 ]; then
		echo "SKIP $name: $(tail -n 1 "$logdir/$name.log")"; skip=$((skip + 1))
	else
		echo "FAIL $name (exit $rc, $((end - start))s), log $logdir/$name.log:"
		tail -n 60 "$logdir/$name.log" | sed 's/^/    | /'
		fail=$((fail + 1)); failed="$failed $name"
	fi
}

for suite in $suites; do
	case $suite in
	unit)
		for t in "$build"/tests/unit/test_*; do
			[ -x "$t" ] || continue
			run_one "unit/$(basename "$t")" timeout -k 10 300 "$t"
		done
		for t in "$build"/tests/unit-san/test_*; do
			[ -x "$t" ] || continue
			run_one "unit-asan-ubsan/$(basename "$t")" timeout -k 10 300 env ASAN_OPTIONS=detect_leaks=1 "$t"
		done ;;
	bpf)
		for t in "$build"/tests/bpf/test_*; do
			[ -x "$t" ] || continue
			run_one "bpf/$(basename "$t")" timeout -k 10 300 "$t"
		done
		for t in "$build"/tests/bpf-san/test_*; do
			[ -x "$t" ] || continue
			run_one "bpf-asan-ubsan/$(basename "$t")" timeout -k 10 300 env ASAN_OPTIONS=detect_leaks=1 "$t"
		done ;;
	e2e)
		for t in tests/e2e/test_*.sh; do
			[ -f "$t" ] || continue
			run_one "e2e/$(basename "$t" .sh)" timeout -k 30 600 bash "$t" "$build"
		done ;;
	*) echo "unknown suite $suite" >&2; exit 2 ;;
	esac
done
echo "== $pass passed, $fail failed, $skip skipped =="
[ $fail -eq 0 ] || { echo "failed:$failed"; exit 1; }
