#!/usr/bin/env bash
# What signature verification adds to a pull, ocikit and skopeo side by side, one run:
#
#   bash benches/trust.sh [RUNS]     (about a minute; default 15 runs of each command)
#
# A 2-layer image (8 MiB of random bytes, and a small text layer) in a private docker-registry
# on 127.0.0.1 started here, signed with an RSA 2048 gpg key by `skopeo copy --sign-by` into a
# lookaside directory, and with a cosign key by ocikit. Each side pulls it into a fresh
# layout (`oci:DIR:v1`), the commands taking turns (median of RUNS rounds, the destination
# removed before each run):
#   unsigned policy: {"default":[{"type":"insecureAcceptAnything"}]}
#   signedBy:        the image's scope needs a simple signature by the gpg key
#   sigstoreSigned:  (ocikit only; Debian's skopeo has sigstore disabled) a cosign signature
# (skopeo with --remove-signatures: it refuses to copy signatures to oci:, after its policy
# check) and the cost of verification is the difference of medians. gpg, skopeo and the registry
# get private paths (GNUPGHOME, --policy, --registries.d): nothing of the machine changes.
# Prints `table|...` lines for benches/compare.sh, and the medians.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-15}

log() { printf '==> %s\n' "$*" >&2; }
for bin in skopeo gpg docker-registry curl; do
    command -v "$bin" >/dev/null || { echo "error: $bin is needed (see benches/compare.sh)" >&2; exit 1; }
done

cargo build --release --quiet -p ocikit-cli
OCIKIT=${OCIKIT_BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}/ocikit
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ocikit-trust.XXXXXX")
REGISTRY_PID=
cleanup() {
    if [[ -n $REGISTRY_PID ]]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    GNUPGHOME=$WORK/gpg gpgconf --kill gpg-agent 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- a private registry, as scripts/test.sh starts one --------------------------------------
# shellcheck source=benches/bench-registry.sh
source benches/bench-registry.sh
REG=127.0.0.1:$PORT
REF=$REG/bench/signed:v1

# --- the image, its signatures, the policies ------------------------------------------------
mkdir -p "$WORK/l1" "$WORK/l2/etc"
head -c 8M /dev/urandom >"$WORK/l1/blob"
echo signed >"$WORK/l2/etc/hello"
"$OCIKIT" build -q --from scratch --layer "$WORK/l1" --layer "$WORK/l2" "oci:$WORK/src:v1" >/dev/null

mkdir -p "$WORK/gpg" && chmod 700 "$WORK/gpg"
export GNUPGHOME=$WORK/gpg
printf 'Key-Type: RSA\nKey-Length: 2048\nName-Real: bench\nName-Email: bench@ocikit.test\nExpire-Date: 0\n%%no-protection\n%%commit\n' \
    >"$WORK/params"
gpg --batch --quiet --gen-key "$WORK/params"
FPR=$(gpg --with-colons --list-secret-keys | awk -F: '/^fpr:/ {print $10; exit}')
gpg --armor --export "$FPR" >"$WORK/key.asc"

mkdir -p "$WORK/registries.d"
printf 'docker:\n  %s:\n    lookaside: file://%s/sigstore\n' "$REG" "$WORK" >"$WORK/registries.d/bench.yaml"
skopeo --insecure-policy --registries.d "$WORK/registries.d" copy -q --dest-tls-verify=false \
    --sign-by "$FPR" "oci:$WORK/src:v1" "docker://$REF"
OCIKIT_PASSWORD=bench "$OCIKIT" generate-key --output-key-prefix "$WORK/cosign" >/dev/null
OCIKIT_PASSWORD=bench "$OCIKIT" sign --sign-by-sigstore-private-key "$WORK/cosign.key" "docker://$REF" >/dev/null

echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/unsigned.json"
printf '{"default":[{"type":"reject"}],"transports":{"docker":{"%s/bench":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"%s/key.asc"}]}}}\n' \
    "$REG" "$WORK" >"$WORK/signedby.json"
printf '{"default":[{"type":"reject"}],"transports":{"docker":{"%s/bench":[{"type":"sigstoreSigned","keyPath":"%s/cosign.pub"}]}}}\n' \
    "$REG" "$WORK" >"$WORK/sigstore.json"
# Both sides accept what they are about to be timed on.
"$OCIKIT" verify --policy "$WORK/signedby.json" --registries.d "$WORK/registries.d" "docker://$REF" >&2
"$OCIKIT" verify --policy "$WORK/sigstore.json" "docker://$REF" >&2
skopeo --policy "$WORK/signedby.json" --registries.d "$WORK/registries.d" copy -q --remove-signatures \
    --src-tls-verify=false "docker://$REF" "oci:$WORK/check:v1"

# --- the timings ----------------------------------------------------------------------------
# Round-robin (each round runs every command once, in turn), so that what else the machine does
# weighs on every command alike; the destination is removed before each run, untimed.
ours() { echo "$OCIKIT copy -q --policy $WORK/$1.json --registries.d $WORK/registries.d docker://$REF oci:$WORK/dst:v1"; }
theirs() { echo "skopeo --policy $WORK/$1.json --registries.d $WORK/registries.d copy -q --remove-signatures --src-tls-verify=false docker://$REF oci:$WORK/dst:v1"; }
/usr/bin/python3 - "$RUNS" "$WORK/dst" \
    "ours-unsigned=$(ours unsigned)" "ours-signedby=$(ours signedby)" "ours-sigstore=$(ours sigstore)" \
    "skopeo-unsigned=$(theirs unsigned)" "skopeo-signedby=$(theirs signedby)" >"$WORK/medians" <<'PY'
import shlex, shutil, statistics, subprocess, sys, time
runs, dst = int(sys.argv[1]), sys.argv[2]
cmds = [a.split("=", 1) for a in sys.argv[3:]]
times = {name: [] for name, _ in cmds}
for i in range(runs + 2):  # two warm-up rounds
    for name, cmd in cmds:
        shutil.rmtree(dst, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(shlex.split(cmd), check=True, stdout=subprocess.DEVNULL)
        if i >= 2:
            times[name].append((time.perf_counter() - t) * 1000)
for name, ts in times.items():
    print(name, "%.1f" % statistics.median(ts))
PY
median() { awk -v n="$1" '$1 == n {print $2}' "$WORK/medians"; }
ou=$(median ours-unsigned) os=$(median ours-signedby) oc=$(median ours-sigstore)
su=$(median skopeo-unsigned) ss=$(median skopeo-signedby)
d() { /usr/bin/python3 -c "print('%+.1f' % ($1 - $2))"; }
echo "medians of $RUNS rounds (ms): ours unsigned $ou, signedBy $os, sigstoreSigned $oc; skopeo unsigned $su, signedBy $ss"
echo "table|verification added to a pull of a signed 8 MiB image (signedBy, OpenPGP)|$(d "$os" "$ou") ms ($ou → $os ms)|skopeo copy --policy|$(d "$ss" "$su") ms ($su → $ss ms)|ours $(d "$os" "$ou") ms against ≤ 5 ms"
echo "table|the same with sigstoreSigned (cosign key)|$(d "$oc" "$ou") ms ($ou → $oc ms)|(skopeo: sigstore disabled in Debian)|-|ours $(d "$oc" "$ou") ms against ≤ 5 ms"
