# Sourced by the benchmarks that need a registry (benches/store.sh, benches/trust.sh): starts a
# private docker-registry on 127.0.0.1, as scripts/test.sh starts one, with its config and
# data under $WORK/registry. Sets PORT and REGISTRY_PID (the sourcing script's clean-up stops
# it); exits with an error if no port could be used.
mkdir -p "$WORK/registry/data"
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
REGISTRY_PID=
for ((attempt = 0; attempt < 20; attempt++)); do
    PORT=$((20000 + RANDOM % 30000))
    port_is_free "$PORT" || continue
    cat >"$WORK/registry/config.yml" <<CONF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry/data}}
http: {addr: 127.0.0.1:$PORT, secret: ocikit-bench-not-a-secret}
CONF
    docker-registry serve "$WORK/registry/config.yml" >>"$WORK/registry/log" 2>&1 </dev/null &
    REGISTRY_PID=$!
    for ((i = 0; i < 100; i++)); do
        kill -0 "$REGISTRY_PID" 2>/dev/null || break
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/") == 200 ]] && break 2
        sleep 0.1
    done
    kill "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
done
[[ -n $REGISTRY_PID ]] || { echo "error: could not start docker-registry" >&2; exit 1; }
