#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after another, on the committed
# seed corpora (new finds are kept in corpus/<target>), and prints how many executions each
# ran. A crash stops the run and leaves its input under artifacts/<target>/.
#
#   bash fuzz/run-all.sh [SECONDS] [TARGET ...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on stable Rust through RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
    TARGETS=(strings documents registry_text docker_archive runtime_config layer_apply layer_read http_connection
        trust_payload trust_policy trust_keys)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t"
    log=$(mktemp)
    cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 \
        -print_final_stats=1 2>"$log" || { tail -n 40 "$log"; exit 1; }
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "$t: $runs executions in ${SECONDS_EACH}s, no crash"
    rm -f "$log"
done
