#!/usr/bin/env bash
# The project's test command: `bash scripts/test.sh`.
#
# 1. Installs (apt-get, Debian 12) the peers the tests talk to, when they are missing.
# 2. Starts a private docker-registry on 127.0.0.1:<free port> with its own config and a
#    temporary data directory, and two more over TLS with a CA and certificates made by
#    `openssl` at start (the second requires a client certificate); they are stopped and
#    their directory removed on exit, also on failure.
# 3. Exports OCIKIT_TEST_REGISTRY=127.0.0.1:<port> (plain HTTP),
#    OCIKIT_TEST_TLS_REGISTRY and OCIKIT_TEST_MTLS_REGISTRY (TLS; client certificate), and
#    OCIKIT_TEST_TLS_DIR, a directory of ca.crt (the CA) and client.cert/client.key (a client
#    certificate the CA signed), then runs every test of the workspace (unit, integration,
#    examples, benches built in test mode, then doctests).
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
    docker-registry skopeo umoci oci-image-tool runc crun busybox-static buildah
    apache2-utils openssl curl ca-certificates
    # ocikit-cli/tests/cli.rs: `ocikit run` against `podman run` (private configuration).
    podman
    # `oci-runtime ps` prints ps(1)'s table for the container's processes (runtime tests).
    procps
    # tests/trust.rs: OpenPGP keys (skopeo --sign-by), the cosign helper's Python crypto.
    gpg gpg-agent python3-cryptography python3-nacl
    # Not used by the tests: the side-by-side benchmarks (benches/compare.sh) need them.
    pigz time
    # Rootless tests: newuidmap/newgidmap map the test user's subordinate ranges.
    uidmap
    # tests/context.rs: which files the ocikit command opens (the system's CA store or not).
    strace
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

for bin in docker-registry skopeo umoci oci-image-tool runc crun busybox buildah podman openssl curl gpg strace; do
    command -v "$bin" >/dev/null || { echo "error: $bin not on PATH after install" >&2; exit 1; }
done

# --- 1b. The unprivileged user of the rootless tests ----------------------------------------
# Tests that must run unprivileged switch to this user (runuser) with a directory of its own
# under /tmp; they fail, not skip, without it. It gets 65536 subordinate uids and gids, after
# every range already granted, in /etc/subuid and /etc/subgid. Idempotent.
ROOTLESS_USER=ocikit-rootless
if [[ $(id -u) -eq 0 ]]; then
    if ! id -u "$ROOTLESS_USER" >/dev/null 2>&1; then
        useradd --no-create-home --home-dir /nonexistent --shell /bin/sh "$ROOTLESS_USER"
        log "created the unprivileged test user $ROOTLESS_USER"
    fi
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        if ! grep -q "^$ROOTLESS_USER:" "$f"; then
            start=$(awk -F: 'BEGIN { m = 100000 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { print m }' "$f")
            echo "$ROOTLESS_USER:$start:65536" >>"$f"
            log "granted $ROOTLESS_USER the range $start:65536 in $f"
        fi
    done
fi

# --- 2. A private registry ---------------------------------------------------------------
# Debian's docker-registry package may run its own service on :5000; we never use it.
REGISTRY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ocikit-registry.XXXXXX")
REGISTRY_PID=
TLS_PIDS=()

cleanup() {
    local status=$? alive=false pid
    for pid in "${TLS_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
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

# --- 2b. Two registries over TLS ---------------------------------------------------------
# A CA made now (valid two days), a server certificate for 127.0.0.1 and a client one, both
# signed by it. The directory uses the names of containers-certs.d(5): ca.crt, client.cert,
# client.key; the server's own files are under server/.
TLS_DIR=$REGISTRY_DIR/tls
make_tls() {
    local d=$TLS_DIR name usage
    mkdir -p "$d/server"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ocikit-test-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$d/server/ca.key" -out "$d/ca.crt" 2>/dev/null
    for name in server client; do
        usage=serverAuth
        [[ $name == client ]] && usage=clientAuth
        openssl req -newkey rsa:2048 -nodes -subj "/CN=ocikit-test-$name" \
            -keyout "$d/server/$name.key" -out "$d/server/$name.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=%s\n' \
            "$usage" >"$d/server/$name.ext"
        openssl x509 -req -in "$d/server/$name.csr" -CA "$d/ca.crt" -CAkey "$d/server/ca.key" \
            -CAcreateserial -CAserial "$d/server/ca.srl" -days 2 -extfile "$d/server/$name.ext" -out "$d/server/$name.crt" 2>/dev/null
    done
    mv "$d/server/client.crt" "$d/client.cert"
    mv "$d/server/client.key" "$d/client.key"
}
make_tls

# start_tls_registry NAME [CLIENT_CA]: a registry over TLS on a free port (requiring a client
# certificate signed by CLIENT_CA when given); sets TLS_PORT.
start_tls_registry() {
    local name=$1 client_ca=${2:-} port dir=$REGISTRY_DIR/registry-$1 i attempt pid
    mkdir -p "$dir/data"
    for ((attempt = 0; attempt < 20; attempt++)); do
        port=$((20000 + RANDOM % 30000))
        port_is_free "$port" || continue
        cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: ocikit-test-registry-not-a-secret
  tls:
    certificate: $TLS_DIR/server/server.crt
    key: $TLS_DIR/server/server.key
EOF
        if [[ -n $client_ca ]]; then
            printf '    clientcas:\n      - %s\n' "$client_ca" >>"$dir/config.yml"
        fi
        docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
        pid=$!
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            # 200 over TLS, trusting the CA (with the client certificate, which only the
            # second registry asks for).
            if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$TLS_DIR/ca.crt" \
                --cert "$TLS_DIR/client.cert" --key "$TLS_DIR/client.key" \
                "https://127.0.0.1:$port/v2/" 2>/dev/null) == 200 ]]; then
                TLS_PIDS+=("$pid")
                TLS_PORT=$port
                return 0
            fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "error: could not start the $name registry over TLS; its log:" >&2
    tail -n 20 "$dir/registry.log" >&2 || true
    return 1
}
TLS_PORT=
start_tls_registry tls
export OCIKIT_TEST_TLS_REGISTRY=127.0.0.1:$TLS_PORT
start_tls_registry mtls "$TLS_DIR/ca.crt"
export OCIKIT_TEST_MTLS_REGISTRY=127.0.0.1:$TLS_PORT
export OCIKIT_TEST_TLS_DIR=$TLS_DIR
log "over TLS: $OCIKIT_TEST_TLS_REGISTRY, and $OCIKIT_TEST_MTLS_REGISTRY requiring a client certificate (CA and client certificate in $TLS_DIR)"

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
