#!/usr/bin/env bash
# Rootless: starting a container of a stored image as an unprivileged user, side by side with
# podman 4.3 as the same user, same image, one run:
#
#   bash benches/rootless.sh [RUNS] [OUT]     (as root; default 3 rounds; about 2 minutes)
#
# `ocikit run --rm --root DIR REF /bin/true` (release build of ocikit-cli; its second run
# onwards: the image is stored) against `podman run --rm --network none REF /bin/true`, both run by the user
# ocikit-rootless (made by scripts/test.sh, with /etc/subuid and /etc/subgid ranges) through
# runuser with a clean environment, under hyperfine (also run as that user). The image is the
# store benchmark's (benches/store-image.sh: ~130 MB, 5 layers, 16k files) from a private
# docker-registry on 127.0.0.1.
#
# podman gets a private configuration in the user's temporary directory: storage.conf with
# driver "overlay" (native overlayfs in its user namespace; without it podman falls back to
# vfs and copies the image on every run), --root/--runroot there, and the containers.conf of
# benches/store.sh (runc, cgroupfs, a file events log, the same ulimits). Nothing of the
# machine's or the user's own configuration is read or changed. Ours runs in a user namespace
# of the user's ids (ocikit::runtime::enter_user_namespace), state under XDG_RUNTIME_DIR, its
# store in the temporary directory. cgroups are v1 here: neither side can use them as a user.
# Prints one line per round and a `table|` row for benches/compare.sh; writes them to OUT.
# The stores go when it ends, unless OCIKIT_BENCH_KEEP is set (then it says what to remove).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-3}
OUT=${2:-}
RL_USER=ocikit-rootless

log() { printf '==> %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || { echo "error: run as root (it switches to $RL_USER)" >&2; exit 1; }
id -u "$RL_USER" >/dev/null 2>&1 && grep -q "^$RL_USER:" /etc/subuid ||
    { echo "error: no user $RL_USER with /etc/subuid ranges: run scripts/test.sh once" >&2; exit 1; }
for tool in podman hyperfine newuidmap skopeo docker-registry runc; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done

cargo build --release --quiet -p ocikit-cli
# OCIKIT_BENCH_BIN: another directory holding `ocikit` (for before/after comparisons).
OCIKIT=${OCIKIT_BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}/ocikit
BASE=$PWD/target/bench-store
# Root's: the registry. The user's (short: podman refuses a runroot over 50 characters).
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ocrr.XXXXXX")
UD=$(mktemp -d /tmp/ocrl.XXXXXX)
REGISTRY_PID=
SHM_LOCK=/dev/shm/libpod_rootless_lock_$(id -u "$RL_USER")
HAD_SHM_LOCK=false
[[ -e $SHM_LOCK ]] && HAD_SHM_LOCK=true

as_user() {
    runuser -u "$RL_USER" -- env -i HOME="$UD/home" XDG_RUNTIME_DIR="$UD/run" \
        XDG_DATA_HOME="$UD/data" XDG_CONFIG_HOME="$UD/config" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        CONTAINERS_CONF="$UD/conf/containers.conf" \
        CONTAINERS_STORAGE_CONF="$UD/conf/storage.conf" \
        CONTAINERS_REGISTRIES_CONF="$UD/conf/registries.conf" "$@"
}

cleanup() {
    local status=$? pid
    if [[ -n $REGISTRY_PID ]]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    # podman's rootless pause process keeps its user namespace: it goes with the directory.
    # (Its pid file is in containers.conf's tmp_dir.)
    for pid in $(find "$UD/run" -name pause.pid -exec cat {} + 2>/dev/null); do
        kill "$pid" 2>/dev/null || true
    done
    # podman's per-user lock in /dev/shm, unless the user had one before.
    $HAD_SHM_LOCK || rm -f "$SHM_LOCK"
    rm -rf "$WORK"
    if [[ -n ${OCIKIT_BENCH_KEEP:-} ]]; then
        echo "kept $UD (OCIKIT_BENCH_KEEP): remove it once no timed run follows" >&2
    else
        rm -rf "$UD"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=benches/store-image.sh
source benches/store-image.sh
# shellcheck source=benches/bench-registry.sh
source benches/bench-registry.sh
REF=127.0.0.1:$PORT/ocikit-bench/rootless:v1
skopeo copy -q --dest-tls-verify=false "oci:$BASE/image:bench" "docker://$REF"
log "registry on 127.0.0.1:$PORT holds $REF"

mkdir -p "$UD"/{home,run,data,config,conf,bin,podman}
cp "$OCIKIT" "$UD/bin/ocikit"
cat >"$UD/conf/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$UD/conf/events.log"
tmp_dir = "$UD/run/podman-tmp"
EOF
cat >"$UD/conf/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$UD/podman/run"
graphroot = "$UD/podman/root"
EOF
printf 'unqualified-search-registries = []\n' >"$UD/conf/registries.conf"
chown -R "$RL_USER:" "$UD"
chmod 0700 "$UD" "$UD/run"

pod=(podman --root "$UD/podman/root" --runroot "$UD/podman/run" --storage-driver overlay)
ours=("$UD/bin/ocikit" run --rm --root "$UD/store" "$REF" /bin/true)
log "first runs (pull and store) as $RL_USER"
as_user "$UD/bin/ocikit" run --rm --root "$UD/store" "$REF" /bin/true >"$WORK/first.log" 2>&1 ||
    { cat "$WORK/first.log" >&2; exit 1; }
as_user "${pod[@]}" pull -q --tls-verify=false "$REF" >"$WORK/pull.log" 2>&1 ||
    { cat "$WORK/pull.log" >&2; exit 1; }
driver=$(as_user "${pod[@]}" info --format '{{.Store.GraphDriverName}}')
[[ $driver == overlay ]] || { echo "error: podman uses the $driver driver, not overlay" >&2; exit 1; }

for i in $(seq "$RUNS"); do
    as_user hyperfine -N --warmup 3 --runs 20 --export-json "$UD/start-$i.json" \
        -n ours "${ours[*]}" \
        -n podman "${pod[*]} run --rm --network none $REF /bin/true" \
        >"$WORK/start.log" 2>&1 || { cat "$WORK/start.log" >&2; exit 1; }
    python3 - "$UD/start-$i.json" >>"$WORK/start.medians" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f'{r["ours"]:.4f} {r["podman"]:.4f} {r["ours"] / r["podman"]:.3f}')
PY
    log "round $i: ours podman ratio = $(tail -n 1 "$WORK/start.medians")"
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "–" hi}'; }
col() { awk -v c="$1" '{print $c}' "$WORK/start.medians"; }
ms() { awk -v x="$1" 'BEGIN {printf "%.1f", x * 1000}'; }
{
    o=$(col 1 | median) p=$(col 2 | median) r=$(col 3 | median)
    echo "rootless start vs podman $(podman --version | awk '{print $3}') as $RL_USER," \
        "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $RUNS rounds of 20"
    echo "start /bin/true from the store: ours median $(ms "$o") ms, podman (overlay) $(ms "$p") ms;" \
        "ratio median ${r}x (rounds $(col 3 | range)x); goal <= 0.5x"
    echo "table|rootless: start a container of the stored 5-layer image as a user, /bin/true|$(ms "$o") ms|podman run --rm (rootless, overlay)|$(ms "$p") ms|${r}x the time"
} | tee "$WORK/report"
[[ -z $OUT ]] || cp "$WORK/report" "$OUT"
