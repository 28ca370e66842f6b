#!/usr/bin/env bash
# ocikit side by side with the tools it replaces, on the same data, in one run:
#
#   bash benches/compare.sh [OUT.md]      (as root; about 10 minutes on 2 cores)
#
# Rows: sha256 (vs `openssl dgst`), layer build (vs `umoci repack` and `tar -c | pigz`),
# layer apply (vs `tar -xzf` and `umoci unpack`), pull into a layout and push to a registry
# (vs `skopeo copy`), what signature verification adds to a pull (vs `skopeo copy --policy`,
# benches/trust.sh), serving pulls and the CPU it costs (our registry vs docker-registry),
# run of /bin/true (vs runc and crun), the image store: start, pull, ten containers (vs
# podman 4.3, benches/store.sh), working containers: from/run/commit and a big commit (vs
# buildah 1.28, benches/working.sh). Each row comes from the benchmark that owns it (see the
# README), run here once; this script gathers their results into one table (printed, and written to OUT.md,
# default benches/RESULTS.md). The corpus (a copy of /usr/share, made once under
# target/bench-corpus) and every registry are local; nothing reaches the network.
# Needs the peers scripts/test.sh installs, plus hyperfine and /usr/bin/time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-benches/RESULTS.md}
LOGS=$(mktemp -d)

missing=()
for pkg in hyperfine time; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
        missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" </dev/null >&2
fi

step() { printf '==> %s\n' "$*" >&2; }
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }

# First: the other benchmarks delete big trees when they end, and on this ext4 without a
# journal, creating files right after that is slow; store.sh and working.sh create many, and
# keep their stores (OCIKIT_BENCH_KEEP) until every timing here is done.
KEPT=()
forget_kept() { ((${#KEPT[@]} == 0)) || rm -rf "${KEPT[@]}"; }
trap 'forget_kept; rm -rf "$LOGS"' EXIT
step "image store vs podman (benches/store.sh, 3 rounds)"
OCIKIT_BENCH_KEEP=1 bash benches/store.sh 3 >"$LOGS/store" 2>"$LOGS/store.err"
KEPT+=($(sed -n 's/^kept \([^ ]*\) .*/\1/p' "$LOGS/store.err"))
while IFS='|' read -r _ op ours peer theirs ratio; do
    row "$op" "$ours" "$peer" "$theirs" "$ratio"
done < <(grep '^table|' "$LOGS/store")

step "working containers vs buildah (benches/working.sh, 3 rounds)"
OCIKIT_BENCH_KEEP=1 bash benches/working.sh 3 >"$LOGS/working" 2>"$LOGS/working.err"
KEPT+=($(sed -n 's/^kept \([^ ]*\) .*/\1/p' "$LOGS/working.err"))
while IFS='|' read -r _ op ours peer theirs ratio; do
    row "$op" "$ours" "$peer" "$theirs" "$ratio"
done < <(grep '^table|' "$LOGS/working")

step "rootless start vs podman as a user (benches/rootless.sh, 3 rounds)"
OCIKIT_BENCH_KEEP=1 bash benches/rootless.sh 3 >"$LOGS/rootless" 2>"$LOGS/rootless.err"
KEPT+=($(sed -n 's/^kept \([^ ]*\) .*/\1/p' "$LOGS/rootless.err"))
while IFS='|' read -r _ op ours peer theirs ratio; do
    row "$op" "$ours" "$peer" "$theirs" "$ratio"
done < <(grep '^table|' "$LOGS/rootless")

step "sha256 vs openssl dgst"
bash benches/sha256-vs-openssl.sh >"$LOGS/sha" 2>"$LOGS/sha.err"
line=$(tail -n 1 "$LOGS/sha")
ours=$(sed -E 's/.*digest_reader ([0-9.]+ GiB\/s \(peak RSS [0-9]+ KiB\)).*/\1/' <<<"$line")
peer=$(sed -E 's/.*openssl dgst ([0-9.]+ GiB\/s \(peak RSS [0-9]+ KiB\)).*/\1/' <<<"$line")
ratio=$(sed -E 's/.*ratio ([0-9.]+)x.*/\1/' <<<"$line")
row "sha256 of 256 MiB (throughput)" "$ours" "openssl dgst" "$peer" "${ratio}x the throughput"

step "layer build and apply (benches/layers.sh, median of 3 runs)"
bash benches/layers.sh 3 >"$LOGS/layers" 2>"$LOGS/layers.err"
layer_row() { # name-in-table peer-label line-key peer-key
    local l
    l=$(grep -E "^$3 +[0-9.]+s +[0-9]+ KiB +$4 " "$LOGS/layers")
    # Fields of the line: name time rss KiB peer time rss KiB ratio.
    # shellcheck disable=SC2086
    set -- "$1" "$2" $l
    row "$1" "$4 ($5 KiB peak RSS)" "$2" "$8 ($9 KiB peak RSS)" "${11} the time"
}
layer_row "build one gzip layer of /usr/share" "umoci repack" build_ours build_umoci
layer_row "build one gzip layer of /usr/share" "tar -c \\| pigz -6" build_ours build_pigz
layer_row "build one gzip layer of large files (/usr/bin, /usr/lib/gcc, /usr/lib/python3.11)" "umoci repack" large_ours large_umoci
layer_row "build one gzip layer of large files" "tar -c \\| pigz -6" large_ours large_pigz
layer_row "apply it" "tar -xzf" apply_ours apply_tar
layer_row "apply it" "umoci unpack" apply_ours apply_umoci
size=$(grep '^layer size:' "$LOGS/layers" | sed -E 's/.*\(([0-9.]+x)\).*/\1/')
gzsize=$(grep '^layer size against gzip' "$LOGS/layers" | sed -E 's/^layer size against gzip -6: //')

step "pull and push (ocikit-distribution vs_skopeo; also through the ocikit command)"
cargo build -q --release -p ocikit-cli >&2
cargo bench -q -p ocikit-distribution --bench vs_skopeo >"$LOGS/dist" 2>"$LOGS/dist.err"
dist_row() { # label key
    local l s o r rss prss
    l=$(grep "^$2: " "$LOGS/dist")
    s=$(sed -E 's/.*skopeo ([0-9.]+s).*/\1/' <<<"$l")
    o=$(sed -E 's/.*ours ([0-9.]+s).*/\1/' <<<"$l")
    r=$(sed -E 's/.*ratio ([0-9.]+).*/\1/' <<<"$l")
    rss=$(sed -E 's/.*our peak RSS ([0-9]+ KiB).*/\1/' <<<"$l")
    prss=$(sed -E 's/.*skopeo peak RSS ([0-9]+ KiB).*/\1/' <<<"$l")
    row "$1" "$o ($rss peak RSS)" "skopeo copy" "$s ($prss peak RSS)" "${r}x the time"
}
dist_row "pull a 107 MiB image into a layout" "pull into a layout"
dist_row "push it to an empty registry" "push to an empty registry"
dist_row "pull it into a layout over TLS" "TLS pull into a layout"
dist_row "push it to an empty registry over TLS" "TLS push to an empty registry"
dist_row "\`ocikit copy\` of it into a layout (the command)" "pull into a layout with the ocikit command"
dist_row "\`ocikit copy\` of it to an empty registry" "push to an empty registry with the ocikit command"
dist_row "\`ocikit copy\` into a layout over TLS" "TLS pull into a layout with the ocikit command"
dist_row "\`ocikit copy\` to an empty registry over TLS" "TLS push to an empty registry with the ocikit command"

step "signature verification on a pull (benches/trust.sh)"
bash benches/trust.sh >"$LOGS/trust" 2>"$LOGS/trust.err"
while IFS='|' read -r _ op ours peer theirs ratio; do
    row "$op" "$ours" "$peer" "$theirs" "$ratio"
done < <(grep '^table|' "$LOGS/trust")

step "serving pulls (our registry vs docker-registry)"
cargo bench -q -p ocikit-distribution --bench server_vs_docker_registry >"$LOGS/srv" 2>"$LOGS/srv.err"
srv_row() { # client
    local l d o r
    l=$(grep "^$1 pull" "$LOGS/srv")
    d=$(sed -E 's/.*from docker-registry [0-9.]+s \(([0-9]+ MiB\/s)\).*/\1/' <<<"$l")
    o=$(sed -E 's/.*from ours [0-9.]+s \(([0-9]+ MiB\/s)\).*/\1/' <<<"$l")
    r=$(sed -E 's/.*throughput ratio ([0-9.]+).*/\1/' <<<"$l")
    row "serve pulls to $1 (throughput)" "$o" "docker-registry" "$d" "${r}x the throughput"
}
srv_row skopeo
srv_row "ocikit client"
l=$(grep "^server CPU per pull" "$LOGS/srv")
d=$(sed -E 's/.*docker-registry ([0-9]+ ms).*/\1/' <<<"$l")
o=$(sed -E 's/.*ours ([0-9]+ ms).*/\1/' <<<"$l")
r=$(sed -E 's/.*ratio ([0-9.]+).*/\1/' <<<"$l")
row "server CPU per pull served" "$o" "docker-registry" "$d" "${r}x the CPU time"
l=$(grep "^server peak RSS" "$LOGS/srv")
d=$(sed -E 's/.*docker-registry ([0-9]+ KiB).*/\1/' <<<"$l")
o=$(sed -E 's/.*ours ([0-9]+ KiB).*/\1/' <<<"$l")
row "server peak RSS over those pulls" "$o" "docker-registry" "$d" "(memory, not time)"

step "run /bin/true (oci-runtime/benches/run.sh)"
sh oci-runtime/benches/run.sh 30 >"$LOGS/run" 2>"$LOGS/run.err"
med() { grep -E "^$1 +median" "$LOGS/run" | awk '{print $3 " ms (" $7 " KiB peak RSS)"}'; }
rr=$(grep '^oci-runtime / runc' "$LOGS/run" | awk '{print $NF}')
rc=$(grep '^oci-runtime / crun' "$LOGS/run" | awk '{print $NF}')
row "run /bin/true" "$(med oci-runtime)" "runc run" "$(med runc)" "${rr}x the time"
row "run /bin/true" "$(med oci-runtime)" "crun run" "$(med crun)" "${rc}x the time"

{
    echo "# ocikit vs peers, $(date -u +%Y-%m-%d), $(nproc) cores, one run of benches/compare.sh"
    echo
    echo "| operation | ocikit | peer | peer | ratio |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Layer size, ocikit vs umoci: $size; against gzip -6: $gzsize. Peak RSS is of each side's process (for the"
    echo "serving rows, of the registry's)."
} | tee "$OUT"
