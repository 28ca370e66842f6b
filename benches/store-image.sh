# Sourced by benches/store.sh and benches/working.sh: the ~130 MB, 5-layer image they share,
# made once under $BASE (target/bench-store) with `$OCIKIT build`, and FILES and
# TREE_BYTES set for the reports. Needs log() from the sourcing script, and the release
# `ocikit` built (or OCIKIT naming one).
# --- the image -----------------------------------------------------------------------------
: "${OCIKIT:=${OCIKIT_BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}/ocikit}"
# 15.8k files of /usr/share over 4 layers (about 125 MB), then busybox: 16k files, 5 layers.
LAYERS=(
    "icons"
    "vim perl"
    "i18n mime zoneinfo X11 alsa"
    "man/man2 man/man3 man/man5 man/man7 man/man8 groff lintian source-highlight tcltk postgresql java bash-completion ca-certificates"
)
if [[ ! -d $BASE/tree ]]; then
    log "copying the image's files under $BASE/tree (once)"
    rm -rf "$BASE/tree.tmp"
    for i in "${!LAYERS[@]}"; do
        for d in ${LAYERS[$i]}; do
            mkdir -p "$BASE/tree.tmp/l$i/usr/share/$(dirname "$d")"
            cp -a "/usr/share/$d" "$BASE/tree.tmp/l$i/usr/share/$d"
        done
    done
    mkdir -p "$BASE/tree.tmp/bb/bin"
    cp /bin/busybox "$BASE/tree.tmp/bb/bin/busybox"
    for b in true sh sleep; do ln -s busybox "$BASE/tree.tmp/bb/bin/$b"; done
    mv "$BASE/tree.tmp" "$BASE/tree"
fi
if [[ ! -f $BASE/image/index.json ]]; then
    log "building the image under $BASE/image (once)"
    rm -rf "$BASE/image.tmp"
    args=()
    for i in "${!LAYERS[@]}"; do args+=(--layer "$BASE/tree/l$i"); done
    SOURCE_DATE_EPOCH=1700000000 "$OCIKIT" build --from scratch "${args[@]}" --layer "$BASE/tree/bb" \
        --cmd /bin/true "oci:$BASE/image.tmp:bench" >/dev/null
    mv "$BASE/image.tmp" "$BASE/image"
fi
FILES=$(find "$BASE/tree" -type f | wc -l)
TREE_BYTES=$(du -sx --block-size=1 "$BASE/tree" | cut -f1)
log "image: $FILES files, $((TREE_BYTES / 1000000)) MB on disk unpacked"
