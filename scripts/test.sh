#!/usr/bin/env bash
# The project's test command: `bash scripts/test.sh`.
#
# 1. Installs (apt-get, Debian 12) the peers the tests talk to, when they are missing.
# 2. Starts a private docker-registry on 127.0.0.1:<free port> with its own config and a
#    temporary data directory; it is stopped and its directory removed on exit, also on failure.
# 3. Exports OCIKIT_TEST_REGISTRY=127.0.0.1:<port> and runs every test of the workspace
#    (unit, integration, examples, benches built in test mode, then doctests).
#
# Arguments, if any, replace `--workspace` in both `cargo test` invocations (the registry is
# still started): package selection only, e.g. `bash scripts/test.sh -p ocikit-distribution`.
# Target filters such as `--test X` do not combine with `--all-targets`/`--doc`: to run one
# command with the registry instead, put it after `--`, e.g.
#   bash scripts/test.sh -- cargo test -p ocikit-distribution --test registry_env
# Needs root (or sudo) only when a package has to be installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --- 1. Debian packages ------------------------------------------------------------------
PACKAGES=(
    docker-registry skopeo umoci oci-image-tool runc crun busybox-static
    apache2-utils openssl curl ca-certificates
    # tests/trust.rs: OpenPGP keys (skopeo --sign-by), the cosign helper's Python crypto.
    gpg gpg-agent python3-cryptography python3-nacl
    # Not used by the tests: the side-by-side benchmarks (benches/compare.sh) need them.
    pigz time
)

log() { printf '==> %s\n' "$*" >&2; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    # `dpkg -s` also succeeds for removed-but-configured packages; check the status line.
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    log "installing missing packages: ${missing[*]}"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null; then
            SUDO=(sudo env DEBIAN_FRONTEND=noninteractive) # sudo resets the environment
        else
            echo "error: packages ${missing[*]} are missing and this is not root (no sudo)" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be empty on a fresh machine: refresh them once, then install.
    "${SUDO[@]}" apt-get update -q
    # docker-registry's maintainer script would start a system registry on :5000; we neither
    # use nor want it, so deny service starts during the install (policy-rc.d exit 101), unless
    # the machine already has a policy of its own.
    policy=/usr/sbin/policy-rc.d
    own_policy=false
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 0755 "$policy"
        own_policy=true
    fi
    install_status=0
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null ||
        install_status=$?
    if $own_policy; then
        "${SUDO[@]}" rm -f "$policy"
    fi
    if ((install_status != 0)); then
        echo "error: apt-get install ${missing[*]} failed ($install_status)" >&2
        exit "$install_status"
    fi
fi

for bin in docker-registry skopeo umoci oci-image-tool runc crun busybox openssl curl gpg; do
    command -v "$bin" >/dev/null || { echo "error: $bin not on PATH after install" >&2; exit 1; }
done

# --- 2. A private registry ---------------------------------------------------------------
# Debian's docker-registry package may run its own service on :5000; we never use it.
REGISTRY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ocikit-registry.XXXXXX")
REGISTRY_PID=

cleanup() {
    local status=$? alive=false
    if [[ -n $REGISTRY_PID ]] && kill -0 "$REGISTRY_PID" 2>/dev/null; then
        alive=true
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    if ((status != 0)) && [[ -n $REGISTRY_PID ]]; then
        # The registry logs every 4xx at level error, so its log is kept, not printed, unless
        # it died under the tests.
        if [[ -s $REGISTRY_DIR/registry.log ]]; then
            mkdir -p target && cp "$REGISTRY_DIR/registry.log" target/test-registry.log &&
                log "the registry's log is kept in target/test-registry.log"
        fi
        if ! $alive; then
            log "the registry (pid $REGISTRY_PID) exited during the run; last lines of its log:"
            tail -n 20 "$REGISTRY_DIR/registry.log" >&2 || true
        fi
    fi
    rm -rf "$REGISTRY_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nothing answers on (bash's /dev/tcp connect fails). The registry is the judge: if it
# loses a race for the port it exits, and we try the next candidate.
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

registry_ready() { # exactly 200 on GET /v2/
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/v2/" 2>/dev/null) == 200 ]]
}

start_registry() {
    local port=$1
    mkdir -p "$REGISTRY_DIR/data"
    cat >"$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
  fields:
    service: ocikit-test-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: ocikit-test-registry-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    docker-registry serve "$REGISTRY_DIR/config.yml" >>"$REGISTRY_DIR/registry.log" 2>&1 </dev/null &
    REGISTRY_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then
            wait "$REGISTRY_PID" 2>/dev/null || true
            REGISTRY_PID=
            return 1
        fi
        if registry_ready "$port"; then
            return 0
        fi
        sleep 0.1
    done
    log "docker-registry did not answer GET /v2/ with 200 on 127.0.0.1:$port within 10 s"
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
    return 1
}

REGISTRY_PORT=
for ((attempt = 0; attempt < 20; attempt++)); do
    candidate=$((20000 + RANDOM % 30000))
    port_is_free "$candidate" || continue
    if start_registry "$candidate"; then
        REGISTRY_PORT=$candidate
        break
    fi
done
if [[ -z $REGISTRY_PORT ]]; then
    echo "error: could not start docker-registry on 127.0.0.1 (log: see above)" >&2
    exit 1
fi
export OCIKIT_TEST_REGISTRY=127.0.0.1:$REGISTRY_PORT
log "docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}') serving on $OCIKIT_TEST_REGISTRY (pid $REGISTRY_PID)"

# --- 3. The tests ------------------------------------------------------------------------
if [[ ${1:-} == -- ]]; then
    shift
    log "$*"
    "$@"
    exit
fi

SCOPE=(--workspace)
if (($# > 0)); then
    SCOPE=("$@")
fi
status=0
# Tests run the recipes as programs (target/debug/examples/NAME); `cargo test --all-targets`
# builds examples only as test harnesses, so build the programs first.
log "cargo build --workspace --examples"
cargo build --workspace --examples
log "cargo test ${SCOPE[*]} --all-targets --no-fail-fast"
# --no-fail-fast: report every failing test binary, not only the first.
cargo test "${SCOPE[@]}" --all-targets --no-fail-fast || status=$?
log "cargo test ${SCOPE[*]} --doc --no-fail-fast"
cargo test "${SCOPE[@]}" --doc --no-fail-fast || status=$?

if ((status != 0)); then
    log "FAILED (see the output above)"
    exit "$status"
fi
log "all tests passed"
