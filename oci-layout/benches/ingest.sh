#!/usr/bin/env bash
# Writing a 1 GiB blob into a layout from a stream, against `cp` + `sha256sum` of the same
# file, measured in one run. Target: ratio <= 1.25.
#
#   bash oci-layout/benches/ingest.sh [SIZE_MIB]     (default 1024)
#
# Our write reads the stream once, hashes and writes it, fsyncs the file and the directory;
# cp writes without fsync and sha256sum reads the copy back from the page cache. Each side
# runs three times, alternating; the best of each is compared.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
size_mib=${1:-1024}
cargo build --release -q -p ocikit-layout --example ingest
bin=target/release/examples/ingest
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ocikit-ingest.XXXXXX")
trap 'rm -rf "$work"' EXIT
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/src"
sync

now() { date +%s.%N; }
best_ours=999999
best_peer=999999
for round in 1 2 3; do
    rm -rf "$work/layout" "$work/copy"
    sync
    t0=$(now)
    "$bin" "$work/layout" "$work/src" >/dev/null
    t1=$(now)
    cp "$work/src" "$work/copy"
    sha256sum "$work/copy" >/dev/null
    t2=$(now)
    ours=$(awk "BEGIN{print $t1 - $t0}")
    peer=$(awk "BEGIN{print $t2 - $t1}")
    printf 'round %d: ocikit %.3fs  cp+sha256sum %.3fs\n' "$round" "$ours" "$peer"
    best_ours=$(awk "BEGIN{print ($ours < $best_ours) ? $ours : $best_ours}")
    best_peer=$(awk "BEGIN{print ($peer < $best_peer) ? $peer : $best_peer}")
done
printf 'best: ocikit %.3fs  cp+sha256sum %.3fs  ratio %.2f (target <= 1.25)\n' \
    "$best_ours" "$best_peer" "$(awk "BEGIN{print $best_ours / $best_peer}")"
