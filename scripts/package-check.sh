#!/usr/bin/env bash
# Packages every crate of the workspace the way `cargo publish` would, and fails if one would
# not be fit to publish: `bash scripts/package-check.sh [--manifest-path PATH] [--no-verify]`.
#
# 1. Every manifest (the workspace's and every Cargo.toml below it) is free of placeholder
#    URLs (example.invalid, example.com, ...). Manifests outside the workspace (fuzz/) must
#    say `publish = false`.
# 2. Every publishable member has description, license, readme, keywords (1 to 5, crates.io's
#    syntax), categories (1 to 5, crates.io slugs) and `[package.metadata.docs.rs]`, read
#    with `cargo metadata --no-deps`.
# 3. `cargo package --workspace --no-verify`: cargo (1.84 and later) resolves the members'
#    dependencies on each other against a local overlay of the tarballs it has just made,
#    which it presents as crates.io. Each tarball's Cargo.lock is read: an entry named like a
#    member (a sibling) must carry the sha256 of our own target/package/<name>-<version>.crate
#    as its checksum; anything else is a crate of that name from the registry, someone
#    else's (before the rename, `oci-layout` pinned crates.io's unrelated `oci-image 0.1.0`).
#    No entry may bear one of our former names (oci-image, ...). The readme the packaged
#    manifest names must be in the tarball.
# 4. `cargo tree --workspace` (all features, all targets, normal, build and dev edges) shows
#    no crate named like a member, or like a former name, from anywhere but this workspace.
# 5. Unless --no-verify: `cargo package --workspace` again, with verification, so every
#    crate is built from its own tarball against its packaged lock; the locks are checked
#    again (step 3) since those are the tarballs that were built.
#
# Each failure is printed as `package-check: <crate>: <reason>`; the exit status is 1 if
# there was any, 2 for a usage error, or cargo's own if cargo failed. `--manifest-path` points
# the check at another workspace (the tests use a small fixture). Network: cargo reads the
# crates.io index (and the verification downloads dependencies), as `cargo publish` does.
# Cargo runs with --allow-dirty: what is checked is the working tree as it stands, so the
# check can run before a commit (CI's clone is clean anyway). Packages land in
# <target dir>/package; earlier tarballs of the members are removed first.
set -euo pipefail

if ! command -v python3 >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 </dev/null >&2
    else
        echo "package-check: python3 is needed (apt-get install python3)" >&2
        exit 1
    fi
fi

exec python3 - "$@" <<'PY'
import hashlib, json, os, re, shutil, subprocess, sys, tarfile, time, tomllib

# Names this project published under, or would have: a crate of such a name in the tree is
# someone else's (the packages were renamed to ocikit-* because these are taken).
FORMER_NAMES = {"oci-image", "oci-layout", "oci-distribution", "oci-runtime"}
# Reserved example names (RFC 2606/6761): never a true URL.
PLACEHOLDER = re.compile(r"[\w.-]*\bexample\.(com|org|net)\b|[\w.-]+\.(invalid|example)\b", re.I)
# crates.io's keyword rule: ASCII, starts with a letter, letters, digits, `_`, `-`, `+`,
# at most 20 characters; at most 5 keywords and 5 categories per crate.
KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9_+-]{0,19}")
# The category slugs crates.io accepts (rust-lang/crates.io, src/boot/categories.toml).
CATEGORIES = set("""
algorithms api-bindings asynchronous authentication caching command-line-interface
command-line-utilities compression computer-vision config concurrency cryptography
cryptography::cryptocurrencies database database-implementations data-structures
date-and-time development-tools development-tools::build-utils
development-tools::cargo-plugins development-tools::debugging development-tools::ffi
development-tools::procedural-macro-helpers development-tools::profiling
development-tools::testing email embedded emulators encoding external-ffi-bindings
filesystem game-engines game-development games graphics gui hardware-support
internationalization localization mathematics memory-management multimedia
multimedia::audio multimedia::video multimedia::images multimedia::encoding
network-programming no-std os os::linux-apis os::macos-apis os::unix-apis os::windows-apis
parser-implementations parsing rendering rendering::engine rendering::graphics-api
rendering::data-formats rust-patterns science science::robotics simulation template-engine
text-editors text-processing value-formatting visualization wasm web-programming
web-programming::http-client web-programming::http-server web-programming::websocket
""".split())

failures = []


def fail(crate, reason):
    failures.append(f"{crate}: {reason}")
    print(f"package-check: {crate}: {reason}", file=sys.stderr, flush=True)


def log(msg):
    print(f"==> package-check: {msg}", file=sys.stderr, flush=True)


def usage(msg):
    print(f"package-check: {msg}\nusage: package-check.sh [--manifest-path PATH] [--no-verify]",
          file=sys.stderr)
    sys.exit(2)


args = sys.argv[1:]
manifest = "Cargo.toml"
verify = True
while args:
    a = args.pop(0)
    if a == "--manifest-path":
        if not args:
            usage("--manifest-path needs a value")
        manifest = args.pop(0)
    elif a.startswith("--manifest-path="):
        manifest = a.split("=", 1)[1]
    elif a == "--no-verify":
        verify = False
    else:
        usage(f"unknown argument {a!r}")
if os.path.isdir(manifest):
    manifest = os.path.join(manifest, "Cargo.toml")
manifest = os.path.abspath(manifest)
MP = ["--manifest-path", manifest]


def cargo(*argv, capture=False):
    cmd = ["cargo", *argv]
    r = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None, text=True)
    if r.returncode != 0:
        print(f"package-check: `{' '.join(cmd)}` failed ({r.returncode})", file=sys.stderr)
        sys.exit(r.returncode)
    return r.stdout


started = time.monotonic()
meta = json.loads(cargo("metadata", "--no-deps", "--format-version", "1", *MP, capture=True))
root = meta["workspace_root"]
package_dir = os.path.join(meta["target_directory"], "package")
members = [p for p in meta["packages"] if p["id"] in meta["workspace_members"]]
ours = {p["name"] for p in members}
# `publish = false` is `[]` in cargo metadata; absent is null (any registry).
publishable = [p for p in members if p["publish"] != []]

# --- 1. Manifests ---------------------------------------------------------------------------
manifests = []
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d not in ("target", ".git") and not d.startswith("target-")]
    if "Cargo.toml" in filenames:
        manifests.append(os.path.join(dirpath, "Cargo.toml"))
member_manifests = {p["manifest_path"] for p in members}
for path in sorted(manifests):
    rel = os.path.relpath(path, root)
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        m = PLACEHOLDER.search(line)
        if m:
            fail(rel, f"line {n}: placeholder host {m.group(0)}: leave out a field that has no true value")
    if path != os.path.join(root, "Cargo.toml") and path not in member_manifests:
        with open(path, "rb") as f:
            outside = tomllib.load(f)
        if "package" in outside and outside["package"].get("publish") is not False:
            fail(rel, "a package outside the workspace must say `publish = false`")

# --- 2. Metadata ----------------------------------------------------------------------------
for p in publishable:
    name = p["name"]
    for field in ("description", "license"):
        if not (p.get(field) or (field == "license" and p.get("license_file"))):
            fail(name, f"no `{field}` in {os.path.relpath(p['manifest_path'], root)}")
    if not p.get("readme"):
        fail(name, "no `readme`")
    elif not os.path.isfile(os.path.join(os.path.dirname(p["manifest_path"]), p["readme"])):
        fail(name, f"readme {p['readme']!r} does not exist")
    for field, limit in (("keywords", 5), ("categories", 5)):
        values = p.get(field) or []
        if not values:
            fail(name, f"no `{field}`")
        elif len(values) > limit:
            fail(name, f"{len(values)} {field}: crates.io takes at most {limit}")
    for k in p.get("keywords") or []:
        if not KEYWORD.fullmatch(k):
            fail(name, f"keyword {k!r}: crates.io wants an ASCII letter, then letters, digits, _ - +, at most 20 characters")
    for c in p.get("categories") or []:
        if c not in CATEGORIES:
            fail(name, f"category {c!r} is not a crates.io category slug")
    if not ((p.get("metadata") or {}).get("docs") or {}).get("rs"):
        fail(name, "no `[package.metadata.docs.rs]`")


# --- 3. The packaged locks ------------------------------------------------------------------
def crate_file(name, version):
    return os.path.join(package_dir, f"{name}-{version}.crate")


def check_tarballs():
    sums = {}
    for p in members:
        path = crate_file(p["name"], p["version"])
        if os.path.exists(path):
            with open(path, "rb") as f:
                sums[(p["name"], p["version"])] = hashlib.sha256(f.read()).hexdigest()
    for p in publishable:
        name, version = p["name"], p["version"]
        path = crate_file(name, version)
        if (name, version) not in sums:
            fail(name, f"cargo package wrote no {os.path.relpath(path, root)}")
            continue
        prefix = f"{name}-{version}/"
        with tarfile.open(path) as tar:
            files = set(tar.getnames())
            try:
                lock = tomllib.loads(tar.extractfile(prefix + "Cargo.lock").read().decode())
            except KeyError:
                lock = None
                fail(name, "the package has no Cargo.lock")
            packaged = tomllib.loads(tar.extractfile(prefix + "Cargo.toml").read().decode())
        readme = packaged.get("package", {}).get("readme")
        if not isinstance(readme, str):
            fail(name, "the packaged Cargo.toml names no readme")
        elif prefix + readme not in files:
            fail(name, f"the readme {readme!r} is not in {os.path.basename(path)}")
        for entry in (lock or {}).get("package", []):
            other, ver = entry["name"], entry["version"]
            source = entry.get("source")
            if other in FORMER_NAMES and other not in ours:
                fail(name, f"Cargo.lock has {other} {ver} from {source}, a crate named like one of ours (a former name)")
            if other not in ours or (other == name and source is None):
                continue
            own = sums.get((other, ver))
            got = entry.get("checksum")
            if own is None or got != own:
                why = (f"checksum {got}, ours is {own}" if own
                       else f"this workspace has no {other} {ver} package")
                fail(name, f"Cargo.lock resolves sibling {other} {ver} from {source}, not from this workspace ({why})")


# Stale tarballs of an earlier run must not stand in for ours.
for p in members:
    for path in (crate_file(p["name"], p["version"]),):
        if os.path.exists(path):
            os.remove(path)
log("cargo package --workspace --no-verify")
# --no-metadata: step 2 checks the metadata; cargo would only add that there is no homepage,
# documentation or repository URL, which is on purpose (no true value exists yet).
cargo("package", "--workspace", "--no-verify", "--allow-dirty", "--no-metadata", *MP)
check_tarballs()

# --- 4. The dependency tree -----------------------------------------------------------------
log("cargo tree --workspace --all-features --target all -e normal,build,dev")
tree = cargo("tree", "--workspace", "--all-features", "--target", "all", "-e", "normal,build,dev",
             "--prefix", "none", "--format", "{p}", *MP, capture=True)
seen = set()
for line in tree.splitlines():
    line = line.removesuffix(" (*)").strip()
    if not line or line in seen:
        continue
    seen.add(line)
    m = re.fullmatch(r"(\S+) v(\S+)(?: \((.*)\))?", line)
    if not m:
        continue
    other, ver, where = m.groups()
    if other not in ours and other not in FORMER_NAMES:
        continue
    local = where is not None and os.path.isabs(where) and os.path.realpath(where).startswith(os.path.realpath(root))
    if not local:
        fail("workspace", f"`cargo tree` has {other} v{ver} from {where or 'crates.io'}, not from this workspace")

# --- 5. Build every crate from its tarball --------------------------------------------------
def forget_old_unpacks():
    """cargo unpacks the siblings it verifies against into $CARGO_HOME/registry/src/<local
    overlay>/NAME-VERSION and reuses such a directory when it is there: one left by an earlier
    packaging of the same version (same path, earlier code) would be built instead of this
    tree's, and the check would test stale code. Only the members' own NAME-VERSION
    directories outside crates.io's are removed (the members' names are not on crates.io),
    with the members' build fingerprints."""
    # cargo takes a registry crate of one name and version as never changing: the build of
    # the earlier unpack in this target directory would be reused too. Forgetting the
    # members' fingerprints makes it build them again (the workspace's own builds included).
    fingerprints = os.path.join(meta["target_directory"], "debug", ".fingerprint")
    if os.path.isdir(fingerprints):
        for entry in os.listdir(fingerprints):
            if any(re.fullmatch(re.escape(p["name"]) + r"-[0-9a-f]+", entry) for p in members):
                shutil.rmtree(os.path.join(fingerprints, entry))
    home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    src = os.path.join(home, "registry", "src")
    if not os.path.isdir(src):
        return
    for registry in os.listdir(src):
        if registry.startswith(("index.crates.io-", "github.com-")):
            continue
        for p in members:
            stale = os.path.join(src, registry, f"{p['name']}-{p['version']}")
            if os.path.isdir(stale):
                shutil.rmtree(stale)


if verify and not failures:
    forget_old_unpacks()
    log("cargo package --workspace (each crate built from its tarball)")
    cargo("package", "--workspace", "--allow-dirty", "--no-metadata", *MP)
    check_tarballs()

names = ", ".join(p["name"] for p in publishable)
if failures:
    log(f"FAILED: {len(failures)} problem(s) in {names}")
    sys.exit(1)
log(f"{len(publishable)} crates packaged{' and built from their tarballs' if verify else ''} "
    f"({names}) in {time.monotonic() - started:.0f} s")
PY
