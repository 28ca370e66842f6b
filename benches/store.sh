#!/usr/bin/env bash
# The image store side by side with podman 4.3, same image, same registry, one run:
#
#   bash benches/store.sh [RUNS] [OUT]     (as root; default 5 rounds; about 3 minutes)
#
# 1. start: a container of a stored image runs /bin/true
#    (`ocikit run --rm --root DIR REF /bin/true` vs `podman run --rm REF /bin/true`);
# 2. pull: the image from the registry into an empty store
#    (`ocikit pull -q --root EMPTY REF` vs `podman pull REF` into an empty root);
# 3. disk: ten containers of the image running at once, and what they cost on disk next to
#    the image's unpacked size (`du -x`: the overlay mounts themselves are not counted).
#
# `ocikit` is the release build of ocikit-cli (OCIKIT_BENCH_BIN names another directory
# holding one, for before/after comparisons). The image: 5 layers, made once under target/bench-store by `ocikit build`
# from system files (4 layers of a 16k-file slice of /usr/share, then busybox-static), with
# SOURCE_DATE_EPOCH, and pushed to a
# private docker-registry on 127.0.0.1 started here. podman gets a private containers.conf
# (CONTAINERS_CONF), registries.conf, --root/--runroot and --tls-verify=false: nothing of the
# machine's own configuration or storage is used or changed. Both sides run with no network
# (`--network none` for podman: its default bridge would add iptables rules and a bridge to
# this machine; ours gives a container an empty network namespace), and podman runs runc (its
# default here, crun 1.8, refuses this machine's hybrid cgroup hierarchy).
#
# Every pull starts alike (dirty pages flushed, page cache dropped, the registry's data read
# back) into a fresh directory; nothing big is deleted until every timing is done (on ext4
# without a journal, creating files right after deleting many is slow for minutes).
# (Short paths: podman refuses a runroot longer than 50 characters.)
# The script's own clean-up deletes every store it made: wait some minutes before the next
# timed run, or set OCIKIT_BENCH_KEEP=1 to keep them (and remove them later).
# Prints one line per row with medians and ranges; writes the same to OUT if given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-5}
OUT=${2:-}

log() { printf '==> %s\n' "$*" >&2; }

missing=()
for pkg in podman hyperfine time docker-registry skopeo busybox-static curl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
        missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]}"
    # docker-registry's maintainer script would start a system registry: deny service starts
    # during the install, as scripts/test.sh does.
    policy=/usr/sbin/policy-rc.d own_policy=false
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null >&2 || { $own_policy && rm -f "$policy"; exit 1; }
    if $own_policy; then rm -f "$policy"; fi
fi

cargo build --release --quiet -p ocikit-cli
# OCIKIT_BENCH_BIN: another directory holding `ocikit` (for before/after comparisons).
OCIKIT=${OCIKIT_BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}/ocikit
BASE=$PWD/target/bench-store
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ocsb.XXXXXX")
REGISTRY_PID=
HAD_LIBPOD_CGROUPS=false
[[ -n $(find /sys/fs/cgroup -maxdepth 2 -name libpod_parent 2>/dev/null) ]] && HAD_LIBPOD_CGROUPS=true

cleanup() {
    local status=$?
    if [[ -n $REGISTRY_PID ]]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    # podman and our containers unmount on exit; anything left mounted under WORK goes first.
    grep -o " $WORK/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n 1 umount -l 2>/dev/null || true
    # podman's cgroupfs manager leaves empty libpod_parent cgroups: remove those it made.
    if ! $HAD_LIBPOD_CGROUPS; then
        find /sys/fs/cgroup -depth -type d -path '*/libpod_parent*' -exec rmdir {} + 2>/dev/null || true
    fi
    if [[ -n ${OCIKIT_BENCH_KEEP:-} ]]; then
        echo "kept $WORK (OCIKIT_BENCH_KEEP): remove it once no timed run follows" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the image (benches/store-image.sh) ------------------------------------------------------
# shellcheck source=benches/store-image.sh
source benches/store-image.sh

# --- a private registry, as scripts/test.sh starts one --------------------------------------
# shellcheck source=benches/bench-registry.sh
source benches/bench-registry.sh
REF=127.0.0.1:$PORT/ocikit-bench/store:v1
skopeo copy -q --dest-tls-verify=false "oci:$BASE/image:bench" "docker://$REF"
log "registry on 127.0.0.1:$PORT holds $REF"

# --- podman's private configuration ----------------------------------------------------------
mkdir -p "$WORK/podman-conf"
cat >"$WORK/podman-conf/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/podman-conf/events.log"
tmp_dir = "$WORK/podman-conf/tmp"
EOF
printf 'unqualified-search-registries = []\n' >"$WORK/podman-conf/registries.conf"
cat >"$WORK/podman-conf/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$WORK/podman-conf/run"
graphroot = "$WORK/podman-conf/root"
EOF
export CONTAINERS_CONF=$WORK/podman-conf/containers.conf
export CONTAINERS_REGISTRIES_CONF=$WORK/podman-conf/registries.conf
export CONTAINERS_STORAGE_CONF=$WORK/podman-conf/storage.conf
pod() { # ROOT ARGS...: podman on a private store
    local root=$1
    shift
    podman --root "$root/root" --runroot "$root/run" --storage-driver overlay "$@"
}

# --- settle: every timed pull starts alike ----------------------------------------------------
settle() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then
        echo 1 >/proc/sys/vm/drop_caches
        find "$WORK/registry/data" -type f -print0 | xargs -0 -r cat >/dev/null
    fi
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "–" hi}'; }

# --- 2. pull into an empty store, RUNS rounds (first, while the disk has deleted nothing) ----
for i in $(seq "$RUNS"); do
    settle
    /usr/bin/time -f "%e %M" -o "$WORK/pull-ours.one" \
        "$OCIKIT" pull -q --root "$WORK/po$i" "$REF" >"$WORK/pull-ours.log" 2>&1 ||
        { cat "$WORK/pull-ours.log" >&2; exit 1; }
    cat "$WORK/pull-ours.one" >>"$WORK/pull-ours.times"
    settle
    /usr/bin/time -f "%e %M" -o "$WORK/pull-podman.one" \
        podman --root "$WORK/pp$i/root" --runroot "$WORK/pp$i/run" \
        --storage-driver overlay pull -q --tls-verify=false "$REF" >"$WORK/pull-podman.log" 2>&1 ||
        { cat "$WORK/pull-podman.log" >&2; exit 1; }
    cat "$WORK/pull-podman.one" >>"$WORK/pull-podman.times"
    log "pull round $i: ours $(cat "$WORK/pull-ours.one"), podman $(cat "$WORK/pull-podman.one") (s KiB)"
done

# --- 1. start a container of the stored image, RUNS rounds of hyperfine -----------------------
STORE=$WORK/po1
PODROOT=$WORK/pp1
for i in $(seq "$RUNS"); do
    hyperfine -N --warmup 3 --runs 20 --export-json "$WORK/start-$i.json" \
        -n ours "$OCIKIT run --rm --root $STORE $REF /bin/true" \
        -n podman "podman --root $PODROOT/root --runroot $PODROOT/run --storage-driver overlay run --rm --network none $REF /bin/true" \
        >"$WORK/start.log" 2>&1 || { cat "$WORK/start.log" >&2; exit 1; }
    python3 - "$WORK/start-$i.json" >>"$WORK/start.medians" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f'{r["ours"]:.4f} {r["podman"]:.4f} {r["ours"] / r["podman"]:.3f}')
PY
    log "start round $i: ours podman ratio = $(tail -n 1 "$WORK/start.medians")"
done
/usr/bin/time -f %M -o "$WORK/start-ours.rss" "$OCIKIT" run --rm --root "$STORE" "$REF" /bin/true
/usr/bin/time -f %M -o "$WORK/start-podman.rss" podman --root "$PODROOT/root" \
    --runroot "$PODROOT/run" --storage-driver overlay run --rm --network none "$REF" /bin/true

# --- 3. ten containers of the image at once ---------------------------------------------------
# What ten running containers add to each store on disk (`du -x`: not the overlay mounts).
du_b() { du -sx --block-size=1 "$@" | awk '{s += $1} END {print s}'; }
store_before=$(du_b "$STORE")
pod_before=$(du_b "$PODROOT")
pids=()
for i in $(seq 10); do
    "$OCIKIT" run --rm --root "$STORE" "$REF" /bin/sleep 20 >/dev/null 2>&1 &
    pids+=($!)
done
for ((t = 0; t < 150; t++)); do
    (($(grep -c " $STORE/containers/[^ ]*/merged overlay " /proc/self/mounts) >= 10)) && break
    sleep 0.1
done
mounted=$(grep -c " $STORE/containers/[^ ]*/merged overlay " /proc/self/mounts || true)
store_during=$(du_b "$STORE")
containers_b=$(du_b "$STORE/containers")
snapshots_b=$(du_b "$STORE/snapshots")
blobs_b=$(du_b "$STORE/layout")
podpids=()
for i in $(seq 10); do
    pod "$PODROOT" run --rm --network none "$REF" /bin/sleep 20 >/dev/null 2>&1 &
    podpids+=($!)
done
for ((t = 0; t < 300; t++)); do
    (($(grep -c " $PODROOT/root/overlay/[^ ]*/merged overlay " /proc/self/mounts) >= 10)) && break
    sleep 0.1
done
podmounted=$(grep -c " $PODROOT/root/overlay/[^ ]*/merged overlay " /proc/self/mounts || true)
pod_during=$(du_b "$PODROOT")
wait "${pids[@]}" "${podpids[@]}" || true

# --- report ---------------------------------------------------------------------------------
col() { awk -v c="$2" '{print $c}' "$WORK/$1"; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
{
    echo "store vs podman $(podman --version | awk '{print $3}'), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $RUNS rounds"
    echo "image: 5 layers, $FILES files, $(mib "$TREE_BYTES") unpacked (du of its tree), $REF"
    echo
    o=$(col start.medians 1 | median) p=$(col start.medians 2 | median)
    echo "1. start /bin/true: ours median $(awk -v x="$o" 'BEGIN {printf "%.1f", x*1000}') ms" \
        "(round medians $(col start.medians 1 | awk '{printf "%.1f\n", $1*1000}' | range) ms," \
        "peak RSS $(cat "$WORK/start-ours.rss") KiB);" \
        "podman median $(awk -v x="$p" 'BEGIN {printf "%.1f", x*1000}') ms" \
        "(round medians $(col start.medians 2 | awk '{printf "%.1f\n", $1*1000}' | range) ms," \
        "peak RSS $(cat "$WORK/start-podman.rss") KiB);" \
        "ratio median $(col start.medians 3 | median)x (rounds $(col start.medians 3 | range)x); goal <= 0.33x"
    # Each round's ratio is of that round's pair.
    paste -d ' ' "$WORK/pull-ours.times" "$WORK/pull-podman.times" |
        awk '{printf "%.3f\n", $1 / $3}' >"$WORK/pull.ratios"
    echo "2. pull into an empty store: ours median $(col pull-ours.times 1 | median) s" \
        "(runs $(col pull-ours.times 1 | range) s, peak RSS $(col pull-ours.times 2 | range) KiB);" \
        "podman median $(col pull-podman.times 1 | median) s (runs $(col pull-podman.times 1 | range) s," \
        "peak RSS $(col pull-podman.times 2 | range) KiB);" \
        "ratio median $(median <"$WORK/pull.ratios")x (runs $(range <"$WORK/pull.ratios")x); goal <= 0.3x, peak RSS <= 65536 KiB"
    echo "3. ten containers running ($mounted overlay mounts): they add $(mib $((store_during - store_before)))" \
        "to the store ($(awk -v b="$((store_during - store_before))" 'BEGIN {printf "%.1f", b / 10240}') KiB each;" \
        "containers/ $(mib "$containers_b")); the store: snapshots/ $(mib "$snapshots_b")," \
        "layout/ (compressed blobs) $(mib "$blobs_b"), in all $(mib "$store_during");" \
        "snapshots + containers $(mib $((snapshots_b + containers_b))) against the goal of unpacked + 10 MiB" \
        "= $(mib $((TREE_BYTES + 10485760)));" \
        "podman ($podmounted mounts): the containers add $(mib $((pod_during - pod_before))), its root in all $(mib "$pod_during")"
    # The rows benches/compare.sh puts in its table.
    ms() { awk -v x="$1" 'BEGIN {printf "%.1f", x * 1000}'; }
    echo "table|start a container of a stored 5-layer image (16k files), run /bin/true|$(ms "$o") ms" \
        "($(cat "$WORK/start-ours.rss") KiB peak RSS)|podman run --rm|$(ms "$p") ms" \
        "($(cat "$WORK/start-podman.rss") KiB peak RSS)|$(col start.medians 3 | median)x the time"
    echo "table|pull that image into an empty store|$(col pull-ours.times 1 | median)s" \
        "($(col pull-ours.times 2 | median) KiB peak RSS)|podman pull|$(col pull-podman.times 1 | median)s" \
        "($(col pull-podman.times 2 | median) KiB peak RSS)|$(median <"$WORK/pull.ratios")x the time"
    added="$(mib $((store_during - store_before)))|podman run|$(mib $((pod_during - pod_before)))"
    echo "table|disk used by ten running containers of it|$added|(image: $(mib "$snapshots_b") unpacked once)"
} | tee "$WORK/report"
[[ -z $OUT ]] || cp "$WORK/report" "$OUT"
