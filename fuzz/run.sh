#!/usr/bin/env bash
# Runs every fuzz target (or those named) for FUZZ_SECONDS each (default
# 600), one after another, and prints each one's executions and findings.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Crashes land in fuzz/artifacts/<target>/; each becomes a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sightline-fuzz-target}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(otlp_protobuf otlp_json remote_write log_query promql)
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  status=0
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    > "logs/$t.log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo '?')
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  echo "$t: ${runs} executions in ${seconds} s, exit ${status}, ${crashes} artifacts"
done
