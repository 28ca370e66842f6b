#!/usr/bin/env bash
# Layer build and apply, side by side with the peers, on one corpus in one run:
#
#   bash benches/layers.sh [RUNS]
#
# - corpora, made once under target/bench-corpus and reused: a copy of /usr/share (tens of
#   thousands of small files and some large ones, about 650 MB here), and a tree of large
#   files (/usr/bin, /usr/lib/gcc and /usr/lib/python3.11: binaries, libraries and their data,
#   about 520 MB in 2.3k files), where deflate, not the file system, bounds a build;
# - build, on each corpus: one gzip layer with `ocikit build --from scratch --layer DIR`
#   against `umoci repack` of the same tree (sizes compared too), and against
#   `tar -c | pigz -6` (a bare tar.gz on both cores: no sorting, no digests, no image around
#   it); the layer's size against `tar -c | gzip -6` of the same tree;
# - apply: the layer unpacked with `ocikit unpack SRC BUNDLE` against `tar -xzf` of the same
#   blob and `umoci unpack` of the same image.
#
# `ocikit` is the command's release build (`cargo build --release -p ocikit-cli`, in
# `${CARGO_TARGET_DIR:-target}`); it runs without a terminal, so without progress display.
#
# Prints the median wall time and peak RSS of each, and the ratios. Every timed run writes
# into a fresh directory and nothing big is deleted until all timings are done (on ext4
# without a journal, creating files right after deleting many is slow).
# Runs start alike: see `settle` below (as root it drops the page cache and re-reads the input).
# Needs umoci, pigz, tar, gzip and /usr/bin/time (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${1:-3}
for tool in umoci pigz; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required (scripts/test.sh installs it)" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time is required (apt-get install time)" >&2; exit 1; }

cargo build --release --quiet -p ocikit-cli
OCIKIT=${CARGO_TARGET_DIR:-target}/release/ocikit
CORPUS=target/bench-corpus/share
if [[ ! -d $CORPUS ]]; then
    echo "making the corpus (a copy of /usr/share) ..." >&2
    mkdir -p "$(dirname "$CORPUS")"
    cp -a /usr/share "$CORPUS.tmp"
    mv "$CORPUS.tmp" "$CORPUS"
fi
echo "corpus: $(du -sh "$CORPUS" | cut -f1), $(find "$CORPUS" -type f | wc -l) files" >&2
LARGE=target/bench-corpus/large
if [[ ! -d $LARGE ]]; then
    echo "making the corpus of large files (/usr/bin, /usr/lib/gcc, /usr/lib/python3.11) ..." >&2
    mkdir -p "$LARGE.tmp/usr/lib"
    cp -a /usr/bin "$LARGE.tmp/usr/bin"
    for d in gcc python3.11; do cp -a "/usr/lib/$d" "$LARGE.tmp/usr/lib/$d"; done
    mv "$LARGE.tmp" "$LARGE"
fi
echo "large files: $(du -sh "$LARGE" | cut -f1), $(find "$LARGE" -type f | wc -l) files" >&2

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ocikit-layers.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# settle: every timed run starts alike. Dirty pages are flushed; as root the clean page cache
# is dropped too (whichever run came when memory was full would otherwise pay for reclaim)
# and the run's input ("${warm[@]}") read back, so it is cached for both sides.
warm=()
settle() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then
        echo 1 >/proc/sys/vm/drop_caches
        find "${warm[@]}" -type f -print0 | xargs -0 -r cat >/dev/null
    fi
}

# time_it NAME CMD...: appends "seconds kib" of one run to $WORK/NAME.times.
time_it() {
    local name=$1
    shift
    settle
    /usr/bin/time -f "%e %M" -o "$WORK/$name.one" "$@" >/dev/null 2>"$WORK/$name.err" ||
        { cat "$WORK/$name.err" >&2; exit 1; }
    cat "$WORK/$name.one" >>"$WORK/$name.times"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/$1.times" | median; }

# umoci's side: an empty image whose bundle gets the corpus, repacked each run.
umoci init --layout "$WORK/umoci" >/dev/null
umoci new --image "$WORK/umoci:base" >/dev/null
umoci init --layout "$WORK/lumoci" >/dev/null
umoci new --image "$WORK/lumoci:base" >/dev/null

for i in $(seq "$RUNS"); do
    # Build.
    warm=("$CORPUS")
    time_it build_ours "$OCIKIT" build --from scratch --layer "$CORPUS" "oci:$WORK/ours:r$i"
    time_it build_pigz sh -c "tar -C '$CORPUS' -cf - . | pigz -6 >'$WORK/pigz$i.tar.gz'"
    umoci unpack --image "$WORK/umoci:base" "$WORK/ub$i" >/dev/null
    cp -a "$CORPUS/." "$WORK/ub$i/rootfs/"
    warm=("$WORK/ub$i")
    time_it build_umoci umoci repack --image "$WORK/umoci:r$i" "$WORK/ub$i"
    # Build, large files.
    warm=("$LARGE")
    time_it large_ours "$OCIKIT" build --from scratch --layer "$LARGE" "oci:$WORK/large:r$i"
    time_it large_pigz sh -c "tar -C '$LARGE' -cf - . | pigz -6 >'$WORK/lpigz$i.tar.gz'"
    umoci unpack --image "$WORK/lumoci:base" "$WORK/lb$i" >/dev/null
    cp -a "$LARGE/." "$WORK/lb$i/rootfs/"
    warm=("$WORK/lb$i")
    time_it large_umoci umoci repack --image "$WORK/lumoci:r$i" "$WORK/lb$i"
    # Apply, each into a directory of its own.
    layer=$(find "$WORK/ours/blobs/sha256" -size +10M | head -n 1)
    warm=("$WORK/ours")
    time_it apply_ours "$OCIKIT" unpack "oci:$WORK/ours:r$i" "$WORK/ao$i"
    mkdir "$WORK/at$i"
    time_it apply_tar tar -xzf "$layer" -C "$WORK/at$i"
    time_it apply_umoci umoci unpack --image "$WORK/ours:r$i" "$WORK/au$i"
done

ours_size=$(find "$WORK/ours/blobs/sha256" -size +10M -printf '%s\n' | head -n 1)
umoci_size=$(find "$WORK/umoci/blobs/sha256" -size +10M -printf '%s\n' | head -n 1)
large_size=$(find "$WORK/large/blobs/sha256" -size +10M -printf '%s\n' | head -n 1)
lumoci_size=$(find "$WORK/lumoci/blobs/sha256" -size +10M -printf '%s\n' | head -n 1)
# The reference size: gzip -6 of a tar of the same tree (untimed).
gzip_size=$(tar -C "$CORPUS" -cf - . | gzip -6 | wc -c)
lgzip_size=$(tar -C "$LARGE" -cf - . | gzip -6 | wc -c)

row() { # name peer
    local o p
    o=$(col "$1" 1)
    p=$(col "$2" 1)
    printf '%-28s %8.2fs %8d KiB   %-14s %8.2fs %8d KiB   %6.2fx\n' "$1" "$o" "$(col "$1" 2)" \
        "$2" "$p" "$(col "$2" 2)" "$(awk -v a="$o" -v b="$p" 'BEGIN {print a / b}')"
}
echo
echo "median of $RUNS runs; ratio = ocikit time / peer time (lower is better)"
printf '%-28s %9s %12s   %-14s %9s %12s   %7s\n' operation ocikit "peak RSS" peer time "peak RSS" ratio
row build_ours build_umoci
row build_ours build_pigz
row large_ours large_umoci
row large_ours large_pigz
row apply_ours apply_tar
row apply_ours apply_umoci
printf 'layer size: ocikit %d bytes, umoci %d bytes (%.3fx)\n' "$ours_size" "$umoci_size" \
    "$(awk -v a="$ours_size" -v b="$umoci_size" 'BEGIN {print a / b}')"
printf 'layer size against gzip -6: /usr/share %.3fx (%d against %d bytes), large files %.3fx (%d against %d; umoci %.3fx)\n' \
    "$(awk -v a="$ours_size" -v b="$gzip_size" 'BEGIN {print a / b}')" "$ours_size" "$gzip_size" \
    "$(awk -v a="$large_size" -v b="$lgzip_size" 'BEGIN {print a / b}')" "$large_size" "$lgzip_size" \
    "$(awk -v a="$lumoci_size" -v b="$lgzip_size" 'BEGIN {print a / b}')"
