#!/usr/bin/env bash
# run.sh DIR TARGET... -- run each libFuzzer target DIR/TARGET for
# $FUZZ_SECONDS (wall) on tests/fuzz/corpus/<name>/ (the committed seeds,
# read only) and DIR/corpus/<name>/ (what it finds, kept between runs),
# then print one table row per target: executions, execs/s, libFuzzer's
# edge coverage (cov) and features (ft), corpus size, CPU seconds (user +
# sys).  Exits non-zero on the first target that crashes, leaks, hits UB
# or exceeds $FUZZ_TIMEOUT seconds on one input; the input is left in
# DIR/artifacts/ and the fuzzer's output in DIR/log/<name>.log.
set -euo pipefail
dir=$1; shift
secs=${FUZZ_SECONDS:-30}
tmo=${FUZZ_TIMEOUT:-10}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/artifacts" "$dir/log"
rows=()
for t in "$@"; do
    name=${t#fuzz_}
    seeds=$here/corpus/$name
    work=$dir/corpus/$name
    log=$dir/log/$name.log
    mkdir -p "$work"
    dict=()
    [ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")
    echo "fuzz: $name for ${secs}s (log $log)"
    rc=0
    # CPU time (user + sys) of the fuzzer, from bash's `time`
    TIMEFORMAT='%U %S'
    { time "$dir/$t" -max_total_time="$secs" -timeout="$tmo" -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/$name-" "${dict[@]}" \
        "$work" "$seeds" >"$log" 2>&1 || rc=$?; } 2>"$dir/log/$name.time"
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$dir/log/$name.time")
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $name FAILED (exit $rc); last lines of $log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    units=$(ls "$work" | wc -l)
    rows+=("$(printf '%-9s %11s %9s %6s %7s %7s %8s' "$name" "$execs" "$rate" "${cov:-?}" "${ft:-?}" "$units" "$cpu")")
done
printf '%-9s %11s %9s %6s %7s %7s %8s\n' target execs execs/s cov ft corpus cpu_s
printf '%s\n' "${rows[@]}"
