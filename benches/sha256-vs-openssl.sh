#!/usr/bin/env bash
# sha256 throughput of ocikit_image::digest_reader relative to `openssl dgst -sha256`, one line:
#
#   bash benches/sha256-vs-openssl.sh
#
# Runs the criterion bench `cargo bench -p ocikit-image --bench digest` (release build; both
# hash the same 256 MiB pseudo-random file, hot in the page cache) and divides the median
# times criterion recorded. A ratio of 1.00x means as fast as openssl; above is faster. Then
# the peak RSS of each, hashing one 256 MiB file once. Needs openssl and /usr/bin/time. Extra arguments go to criterion (e.g. `--measurement-time 20`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v openssl >/dev/null || { echo "error: openssl is required (apt-get install openssl)" >&2; exit 1; }

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
GROUP=$TARGET_DIR/criterion/sha256_256MiB
rm -rf "$GROUP/ocikit_image/new" "$GROUP/openssl/new" # never report a previous run

cargo bench -p ocikit-image --bench digest -- "$@" >&2

# The median time (ns) of one 256 MiB pass, from criterion's estimates.json.
median_ns() {
    local file=$GROUP/$1/new/estimates.json
    [[ -s $file ]] || { echo "error: $file missing: did the bench run?" >&2; exit 1; }
    grep -o '"median":{"confidence_interval":{[^}]*},"point_estimate":[0-9.eE+-]*' "$file" |
        sed 's/.*"point_estimate"://'
}
ours=$(median_ns ocikit_image)
theirs=$(median_ns openssl)

# Peak RSS of each hashing one 256 MiB file once (the sha256sum example streams it through
# digest_reader, as the bench does).
cargo build --release -q -p ocikit-image --example sha256sum
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c $((256 << 20)) /dev/urandom >"$tmp/file"
/usr/bin/time -f %M -o "$tmp/rss-ours" "$TARGET_DIR/release/examples/sha256sum" "$tmp/file" >/dev/null
/usr/bin/time -f %M -o "$tmp/rss-openssl" openssl dgst -sha256 "$tmp/file" >/dev/null
rss_ours=$(tail -n 1 "$tmp/rss-ours")
rss_openssl=$(tail -n 1 "$tmp/rss-openssl")

awk -v ours="$ours" -v theirs="$theirs" -v ro="$rss_ours" -v rp="$rss_openssl" 'BEGIN {
    mib = 256; gib = 1024 * 1024 * 1024
    printf "sha256 256 MiB: ocikit_image::digest_reader %.2f GiB/s (peak RSS %d KiB), openssl dgst %.2f GiB/s (peak RSS %d KiB), ratio %.2fx openssl\n",
        (mib * 1048576 / gib) / (ours / 1e9), ro, (mib * 1048576 / gib) / (theirs / 1e9), rp, theirs / ours
}'
