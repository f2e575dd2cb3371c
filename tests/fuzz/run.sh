#!/bin/sh
# Build and run the libFuzzer targets (tests/fuzz/fuzz_*.c).
#
#   run.sh smoke          replay every saved crasher and seed as a regression
#                         input, then fuzz each target for FUZZ_SMOKE_SECONDS
#                         (3); what `make test` runs
#   run.sh long SECONDS   fuzz each target for SECONDS, FUZZ_JOBS (the CPU
#                         count) at a time, starting from the seeds and what
#                         earlier runs found (build-fuzz/corpus/TARGET)
#   run.sh merge          minimise what the long runs found into the seed
#                         corpus (tests/fuzz/corpus/TARGET): only inputs
#                         that add coverage are copied
#   run.sh build          only build
#
# FUZZ_TARGETS limits the targets ("http_request chunked").  Crashes are saved
# in build-fuzz/artifacts/TARGET/; each one fixed goes into
# tests/fuzz/crashers/TARGET/ beside a unit test.  Exits non-zero on any
# crash, leak, timeout or invariant failure.
set -eu

cd "$(dirname "$0")/../.."
top=$(pwd)
out=$top/build-fuzz
mode=${1:-smoke}

make -s -f tests/fuzz/fuzz.mk -j"$(nproc)" FUZZ_BUILD=build-fuzz
[ "$mode" = build ] && exit 0

targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}
# Freed memory goes back to the system now and then, so that a long run's
# RSS stays near what it uses (libFuzzer's default limit is 2 GB).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_release_to_os_interval_ms=1000}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run TARGET ARGS...: one fuzzer run in an empty directory of its own (config
# texts name files relative to it) with nothing on stdin.
run() {
	t=$1
	shift
	case $t in
	http_* | chunked) dict=$top/tests/fuzz/http.dict ;;
	*) dict=$top/tests/fuzz/$t.dict ;;
	esac
	if [ -e "$dict" ]; then
		set -- -dict="$dict" "$@"
	fi
	mkdir -p "$out/cwd/$t" "$out/artifacts/$t"
	(cd "$out/cwd/$t" && "$out/fuzz_$t" -timeout=10 \
		-artifact_prefix="$out/artifacts/$t/" "$@" </dev/null)
}

# The inputs of a target to replay: saved crashers, then the seeds.
inputs() {
	for d in crashers corpus; do
		find "$top/tests/fuzz/$d/$1" -type f ! -name '.*' 2>/dev/null |
			sort
	done
}

# A line of libFuzzer's final output for the summary.
summary() { # summary TARGET LOG
	done_line=$(grep -E '^#[0-9]+ *DONE' "$2" | tail -1)
	[ -n "$done_line" ] || done_line=$(grep -E '^#[0-9]+' "$2" | tail -1)
	printf '%-14s %s\n' "$1" "$done_line"
}

# smoke_one TARGET: replay its regression inputs, then fuzz it briefly.
smoke_one() {
	t=$1
	# shellcheck disable=SC2046
	if ! run "$t" $(inputs "$t") >"$out/replay-$t.log" 2>&1; then
		{
			echo "fuzz-smoke: $t: a regression input fails" \
			     "(build-fuzz/replay-$t.log):"
			grep -E 'Running:|ERROR|invariant|SUMMARY' \
				"$out/replay-$t.log" | tail -5
		} >"$out/smoke-$t.failed"
		return
	fi
	scratch=$(mktemp -d)
	cp "tests/fuzz/corpus/$t"/* "$scratch"/
	if ! run "$t" -max_total_time="$secs" -print_final_stats=1 \
		"$scratch" >"$out/smoke-$t.log" 2>&1; then
		{
			echo "fuzz-smoke: $t: crash (build-fuzz/smoke-$t.log," \
			     "input in build-fuzz/artifacts/$t/)"
			grep -E 'ERROR|invariant|SUMMARY|Test unit written' \
				"$out/smoke-$t.log" | tail -5
		} >"$out/smoke-$t.failed"
	fi
	rm -rf "$scratch"
}

# long_one TARGET: fuzz it for $secs seconds, from the seeds and what
# earlier runs found.
long_one() {
	t=$1
	mkdir -p "$out/corpus/$t"
	cp -n "tests/fuzz/corpus/$t"/* "$out/corpus/$t"/ 2>/dev/null || true
	run "$t" -max_total_time="$secs" -print_final_stats=1 \
		"$out/corpus/$t" >"$out/long-$t.log" 2>&1 ||
		touch "$out/long-$t.failed"
}

# each FUNCTION: FUNCTION TARGET for every target, FUZZ_JOBS (the CPU
# count) at a time.
each() {
	jobs=${FUZZ_JOBS:-$(nproc)}
	set --
	for t in $targets; do
		"$each_fn" "$t" &
		set -- "$@" $!
		if [ $# -ge "$jobs" ]; then
			wait "$@"
			set --
		fi
	done
	wait
}

case $mode in
smoke)
	secs=${FUZZ_SMOKE_SECONDS:-3}
	rm -f "$out"/smoke-*.failed
	each_fn=smoke_one
	each
	fail=0
	for t in $targets; do
		if [ -e "$out/smoke-$t.failed" ]; then
			cat "$out/smoke-$t.failed" >&2
			fail=1
		else
			summary "$t" "$out/smoke-$t.log"
		fi
	done
	exit $fail
	;;
long)
	secs=${2:?usage: run.sh long SECONDS}
	rm -f "$out"/long-*.failed
	each_fn=long_one
	each
	fail=0
	for t in $targets; do
		summary "$t" "$out/long-$t.log"
		if [ -e "$out/long-$t.failed" ]; then
			echo "fuzz: $t: crash (build-fuzz/long-$t.log," \
			     "input in build-fuzz/artifacts/$t/)" >&2
			fail=1
		fi
	done
	exit $fail
	;;
merge)
	for t in $targets; do
		[ -d "$out/corpus/$t" ] || continue
		run "$t" -merge=1 "$top/tests/fuzz/corpus/$t" "$out/corpus/$t" \
			>"$out/merge-$t.log" 2>&1
		echo "$t: $(ls "tests/fuzz/corpus/$t" | wc -l) seeds"
	done
	;;
*)
	echo "usage: run.sh smoke | long SECONDS | merge | build" >&2
	exit 2
	;;
esac
