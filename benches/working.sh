#!/usr/bin/env bash
# Working containers side by side with buildah 1.28, same stored image, one run:
#
#   bash benches/working.sh [RUNS] [OUT]     (as root; default 5 rounds; about 2 minutes)
#
# 1. from, run, commit: a working container over the stored ~130 MB, 5-layer image of
#    benches/store.sh, `run -- /bin/sh -c 'echo hi > /hello; rm /bin/sleep'` (the image's
#    busybox has no `ls`: `sleep` is the base file deleted), `commit` into the store; the
#    three commands timed together (`ocikit work from/run/commit` vs `buildah from/run/commit`,
#    each a process of its own);
# 2. commit of a run that wrote ~100 MB of files (a copy of the image's icons, vim and perl
#    trees under /opt, 2.8k files): the commit alone is timed.
# Both keep layers uncompressed in their store (buildah commit's default
# `--disable-compression`; ours likewise) and run with the host's network (`--network host`).
#
# buildah gets a private containers.conf, storage.conf and registries.conf
# (CONTAINERS_CONF...), and a private --root/--runroot: nothing of the machine's own
# configuration or storage is used or changed. The image goes into both stores once, before
# any timing (buildah's through skopeo: buildah would name an oci: image after its path).
# Nothing is deleted until every timing is done (ext4 without a journal).
# Prints one line per row with medians and ranges; writes the same to OUT if given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-5}
OUT=${2:-}

log() { printf '==> %s\n' "$*" >&2; }

missing=()
for pkg in buildah skopeo time busybox-static; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
        missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null >&2
fi

cargo build --release --quiet -p ocikit-cli
OCIKIT=${OCIKIT_BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}/ocikit
BASE=$PWD/target/bench-store
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ocwb.XXXXXX")
cleanup() {
    local status=$?
    grep -o " $WORK/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n 1 umount -l 2>/dev/null || true
    if [[ -n ${OCIKIT_BENCH_KEEP:-} ]]; then
        echo "kept $WORK (OCIKIT_BENCH_KEEP)" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=benches/store-image.sh
source benches/store-image.sh

# --- buildah's private configuration ---------------------------------------------------------
mkdir -p "$WORK/conf"
cat >"$WORK/conf/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/conf/events.log"
CONF
printf 'unqualified-search-registries = []\n' >"$WORK/conf/registries.conf"
cat >"$WORK/conf/storage.conf" <<CONF
[storage]
driver = "overlay"
runroot = "$WORK/bh/run"
graphroot = "$WORK/bh/root"
CONF
export CONTAINERS_CONF=$WORK/conf/containers.conf
export CONTAINERS_REGISTRIES_CONF=$WORK/conf/registries.conf
export CONTAINERS_STORAGE_CONF=$WORK/conf/storage.conf
bh() { buildah --root "$WORK/bh/root" --runroot "$WORK/bh/run" --storage-driver overlay "$@"; }
ours() { "$OCIKIT" work --root "$WORK/ours" "$@"; }

log "storing the image in both stores"
"$OCIKIT" pull --quiet --root "$WORK/ours" "oci:$BASE/image:bench" >/dev/null
skopeo copy -q "oci:$BASE/image:bench" \
    "containers-storage:[overlay@$WORK/bh/root+$WORK/bh/run]localhost/bench:latest"

SMALL="echo hi > /hello; rm /bin/sleep"
BIG="/bin/busybox mkdir /opt && /bin/busybox cp -a /usr/share/icons /usr/share/vim /usr/share/perl /opt/"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f\n", b - a}'; }
three_ours() {
    local c
    c=$(ours from bench)
    ours run --network host "$c" -- /bin/sh -c "$SMALL"
    ours commit "$c" >/dev/null
}
three_buildah() {
    local c
    c=$(bh from -q localhost/bench:latest)
    bh run --network host "$c" -- /bin/sh -c "$SMALL"
    bh commit -q "$c" >/dev/null
}
for i in $(seq "$RUNS"); do
    # 1. Alternating which goes first.
    for who in $( ((i % 2)) && echo "ours buildah" || echo "buildah ours"); do
        sync
        t0=$(now)
        "three_$who"
        t1=$(now)
        elapsed "$t0" "$t1" >>"$WORK/three-$who"
    done
    # 2. The run untimed, the commit timed.
    c=$(ours from bench)
    ours run --network host "$c" -- /bin/busybox sh -c "$BIG"
    b=$(bh from -q localhost/bench:latest)
    bh run --network host "$b" -- /bin/busybox sh -c "$BIG"
    sync
    /usr/bin/time -f "%e %M" -o "$WORK/one" "$OCIKIT" work --root "$WORK/ours" commit "$c" >/dev/null
    cat "$WORK/one" >>"$WORK/big-ours"
    sync
    /usr/bin/time -f "%e %M" -o "$WORK/one" buildah --root "$WORK/bh/root" --runroot "$WORK/bh/run" \
        --storage-driver overlay commit -q "$b" >/dev/null
    cat "$WORK/one" >>"$WORK/big-buildah"
    log "round $i: from+run+commit ours $(tail -n 1 "$WORK/three-ours") s, buildah $(tail -n 1 "$WORK/three-buildah") s;" \
        "100 MB commit ours $(tail -n 1 "$WORK/big-ours"), buildah $(tail -n 1 "$WORK/big-buildah") (s KiB)"
done
UPPER_BYTES=$(du -sx --block-size=1 "$BASE/tree/l0/usr/share/icons" "$BASE/tree/l1/usr/share/vim" \
    "$BASE/tree/l1/usr/share/perl" | awk '{s += $1} END {print s}')

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "–" hi}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/$1"; }
paste -d ' ' "$WORK/three-ours" "$WORK/three-buildah" | awk '{printf "%.3f\n", $1 / $2}' >"$WORK/three.ratios"
paste -d ' ' "$WORK/big-ours" "$WORK/big-buildah" | awk '{printf "%.3f\n", $1 / $3}' >"$WORK/big.ratios"
{
    echo "working containers vs $(buildah --version | awk '{print $1, $3}'), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $RUNS rounds"
    echo "image: 5 layers, $FILES files, $((TREE_BYTES / 1048576)) MiB unpacked"
    echo "1. from + run + commit: ours median $(median <"$WORK/three-ours") s (runs $(range <"$WORK/three-ours") s);" \
        "buildah median $(median <"$WORK/three-buildah") s (runs $(range <"$WORK/three-buildah") s);" \
        "ratio median $(median <"$WORK/three.ratios")x (rounds $(range <"$WORK/three.ratios")x); goal <= 0.5x"
    echo "2. commit of a run that wrote $((UPPER_BYTES / 1048576)) MiB: ours median $(col big-ours 1 | median) s" \
        "(runs $(col big-ours 1 | range) s, peak RSS $(col big-ours 2 | range) KiB);" \
        "buildah median $(col big-buildah 1 | median) s (runs $(col big-buildah 1 | range) s," \
        "peak RSS $(col big-buildah 2 | range) KiB);" \
        "ratio median $(median <"$WORK/big.ratios")x (rounds $(range <"$WORK/big.ratios")x); goal <= 0.5x"
    echo "table|from, run, commit a working container of that image|$(median <"$WORK/three-ours")s|buildah from/run/commit|$(median <"$WORK/three-buildah")s|$(median <"$WORK/three.ratios")x the time"
    echo "table|commit a run that wrote $((UPPER_BYTES / 1048576)) MiB of files|$(col big-ours 1 | median)s ($(col big-ours 2 | median) KiB peak RSS)|buildah commit|$(col big-buildah 1 | median)s ($(col big-buildah 2 | median) KiB peak RSS)|$(median <"$WORK/big.ratios")x the time"
} | tee "$WORK/report"
[[ -z $OUT ]] || cp "$WORK/report" "$OUT"
