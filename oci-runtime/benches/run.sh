#!/bin/sh
# Benchmark (not a test): wall time of one `run` of /bin/true in the same busybox bundle under
# oci-runtime, runc and crun, and the peak RSS of each. Needs root, hyperfine (apt-get install
# hyperfine), /usr/bin/time, runc, crun and busybox-static.
#
# crun only runs here with --cgroup-manager=disabled inside a mount namespace that hides the
# cgroup2 mount, so all three run inside that same private mount namespace for fairness.
#
# usage: oci-runtime/benches/run.sh [RUNS]   (default 50)
set -eu
RUNS=${1:-50}
here=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -q -p ocikit-runtime --manifest-path "$here/Cargo.toml"
OURS=${OCI_RUNTIME:-$here/target/release/oci-runtime}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
b=$work/bundle
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/etc"
cp /bin/busybox "$b/rootfs/bin/busybox"
ln -s busybox "$b/rootfs/bin/true"
ln -s busybox "$b/rootfs/bin/sh"
cat > "$b/config.json" <<'JSON'
{
  "ociVersion": "1.0.2",
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "bench",
  "process": {"args": ["/bin/true"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}],
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
    "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON

cat > "$work/inner.sh" <<INNER
set -eu
umount -l /sys/fs/cgroup/unified 2>/dev/null || true
hyperfine -N --warmup 5 --runs $RUNS --export-json $work/result.json \
  -n oci-runtime "$OURS --root $work/s-ours run --bundle $b bench-ours" \
  -n runc "runc --root $work/s-runc run --bundle $b bench-runc" \
  -n crun "crun --cgroup-manager=disabled --root $work/s-crun run --bundle $b bench-crun"
# Peak RSS of each, from one more (untimed) run under /usr/bin/time.
/usr/bin/time -f %M -o $work/rss-oci-runtime $OURS --root $work/s-ours run --bundle $b rss-ours
/usr/bin/time -f %M -o $work/rss-runc runc --root $work/s-runc run --bundle $b rss-runc
/usr/bin/time -f %M -o $work/rss-crun crun --cgroup-manager=disabled --root $work/s-crun run --bundle $b rss-crun
INNER
unshare -m --propagation private sh "$work/inner.sh"

python3 - "$work/result.json" "$work" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
for k, v in med.items():
    rss = open(f"{sys.argv[2]}/rss-{k}").read().split()[-1]
    print(f"{k:12} median {v:7.2f} ms  peak RSS {rss} KiB")
print(f"oci-runtime / runc = {med['oci-runtime'] / med['runc']:.3f}")
print(f"oci-runtime / crun = {med['oci-runtime'] / med['crun']:.3f}")
PY
