//! `registries.conf`, as containers-registries.conf(5) describes it (version 2, and the
//! version 1 `insecure` and `block` lists): which `[[registry]]` table an image name falls
//! under, where it is really pulled from (mirrors, then the location), whether it is blocked
//! or insecure.
//!
//! Short names (`unqualified-search-registries`, `aliases`, `short-name-mode`) and
//! `credential-helpers` are out of scope: their keys are accepted and ignored.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::{Error, Reference, Result};

/// Where a mirror may serve from, its `pull-from-mirror` value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullFromMirror {
    /// `all` (or empty, the default): pulls by tag and by digest.
    #[default]
    All,
    /// `digest-only`: "mirrors will only be used for digest pulls".
    DigestOnly,
    /// `tag-only`: "mirrors will only be used for tag pulls".
    TagOnly,
}

/// One `[[registry.mirror]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    location: String,
    insecure: Option<bool>,
    pull_from_mirror: PullFromMirror,
}

impl Mirror {
    /// Its `location`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Its `insecure` value, if set.
    pub fn insecure(&self) -> Option<bool> {
        self.insecure
    }

    /// Its `pull-from-mirror` value.
    pub fn pull_from_mirror(&self) -> PullFromMirror {
        self.pull_from_mirror
    }
}

/// One `[[registry]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryEntry {
    prefix: String,
    location: String,
    insecure: Option<bool>,
    blocked: bool,
    mirror_by_digest_only: bool,
    mirrors: Vec<Mirror>,
    file: PathBuf,
}

impl RegistryEntry {
    /// Its `prefix` (its `location` when it has none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Its `location` (empty for a wildcard prefix without one: no rewriting).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Its `insecure` value, if set.
    pub fn insecure(&self) -> Option<bool> {
        self.insecure
    }

    /// Its `blocked` value.
    pub fn blocked(&self) -> bool {
        self.blocked
    }

    /// Its mirrors, in order.
    pub fn mirrors(&self) -> &[Mirror] {
        &self.mirrors
    }

    /// The file it was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// How long a match of `name` (`host[:port]/repository[:tag|@digest]`) under this
    /// prefix is, if it matches.
    ///
    /// "The user-specified image name must start with the specified `prefix` (and continue
    /// with the appropriate separator) for a particular `[[registry]]` TOML table to be
    /// considered; (only) the TOML table with the longest match is used. It can also include
    /// wildcarded subdomains in the format `*.example.com`. ... Note that `*` matches an
    /// arbitrary number of subdomains." (containers-registries.conf(5))
    fn match_len(&self, name: &str) -> Option<usize> {
        if let Some(domain) = self.prefix.strip_prefix("*.") {
            let host = name.split('/').next().unwrap_or(name);
            let host = host.split(':').next().unwrap_or(host);
            return host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
                .then_some(self.prefix.len());
        }
        let rest = name.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with(['/', ':', '@'])).then_some(self.prefix.len())
    }

    /// `name` with this prefix replaced by `location` (unchanged for a wildcard prefix
    /// without location).
    fn rewrite(&self, location: &str, name: &str) -> String {
        if self.prefix.starts_with("*.") {
            if location.is_empty() {
                return name.to_owned();
            }
            // A wildcard's location replaces the host.
            let rest = name.find('/').map(|i| &name[i..]).unwrap_or("");
            return format!("{location}{rest}");
        }
        format!("{location}{}", &name[self.prefix.len()..])
    }
}

/// Where an image is pulled from or pushed to, after registries.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The reference at that place.
    pub reference: Reference,
    /// The `insecure` value that applies there, if set.
    pub insecure: Option<bool>,
    /// Whether it is a mirror (rather than the primary location).
    pub mirror: bool,
}

/// The registries configuration: every `[[registry]]` table of the files read.
///
/// ```
/// use ocikit_distribution::{RegistriesConf, Reference};
///
/// let conf = RegistriesConf::parse(r#"
///     [[registry]]
///     prefix = "example.com/foo"
///     location = "internal.example.net/bar"
///     [[registry.mirror]]
///     location = "mirror.local/foo"
/// "#, "registries.conf")?;
/// let r: Reference = "example.com/foo/app:1".parse()?;
/// let places: Vec<String> = conf.pull_endpoints(&r)?.iter().map(|e| e.reference.to_string()).collect();
/// assert_eq!(places, ["mirror.local/foo/app:1", "internal.example.net/bar/app:1"]);
/// # Ok::<_, ocikit_distribution::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    registries: Vec<RegistryEntry>,
    files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileV2 {
    #[serde(default)]
    registry: Vec<Spanned<RegistryV2>>,
    #[serde(default)]
    registries: Option<Spanned<RegistriesV1>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RegistryV2 {
    prefix: Option<Spanned<String>>,
    location: Option<Spanned<String>>,
    insecure: Option<bool>,
    #[serde(default)]
    blocked: bool,
    mirror_by_digest_only: Option<bool>,
    #[serde(default)]
    mirror: Vec<Spanned<MirrorV2>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct MirrorV2 {
    location: Spanned<String>,
    insecure: Option<bool>,
    pull_from_mirror: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
struct RegistriesV1 {
    #[serde(default)]
    insecure: Option<ListV1>,
    #[serde(default)]
    block: Option<ListV1>,
}

#[derive(Deserialize, Default)]
struct ListV1 {
    #[serde(default)]
    registries: Vec<String>,
}

/// Line and column (1-based) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

impl RegistriesConf {
    /// Parses the text of one registries.conf; `path` names it in errors, which say the line
    /// and column ([`Error::Config`]).
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self> {
        let mut conf = RegistriesConf::default();
        conf.add(text, path.as_ref())?;
        Ok(conf)
    }

    /// Reads the files at `paths` in order; a table of a later file replaces one of an
    /// earlier file with the same prefix (containers-registries.conf.d(5)).
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let mut conf = RegistriesConf::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
                path: path.clone(),
                line: None,
                column: None,
                message: e.to_string(),
            })?;
            conf.add(&text, path)?;
        }
        Ok(conf)
    }

    /// Reads the files skopeo and podman read: [`system_files`](Self::system_files).
    pub fn load_system() -> Result<Self> {
        Self::load(&Self::system_files())
    }

    /// The registries.conf files that exist, in the order they apply:
    /// `$CONTAINERS_REGISTRIES_CONF` alone when set; else
    /// `$HOME/.config/containers/registries.conf` "if it exists, otherwise
    /// `/etc/containers/registries.conf`" (containers-registries.conf(5)), then the `*.conf`
    /// drop-ins of `registries.conf.d` beside it in name order (and, for the system file,
    /// the user's `registries.conf.d` after the system's), as containers/image reads them.
    pub fn system_files() -> Vec<PathBuf> {
        if let Some(path) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|p| !p.is_empty())
        {
            return vec![PathBuf::from(path)];
        }
        let user = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/containers"));
        let user_file = user.as_ref().map(|u| u.join("registries.conf"));
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        match (&user, &user_file) {
            (Some(user), Some(file)) if file.is_file() => {
                files.push(file.clone());
                dirs.push(user.join("registries.conf.d"));
            }
            _ => {
                let system = PathBuf::from("/etc/containers/registries.conf");
                if system.is_file() {
                    files.push(system);
                }
                dirs.push(PathBuf::from("/etc/containers/registries.conf.d"));
                if let Some(user) = &user {
                    dirs.push(user.join("registries.conf.d"));
                }
            }
        }
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut drop_ins: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
                .collect();
            drop_ins.sort();
            files.extend(drop_ins);
        }
        files
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every `[[registry]]` table, in order.
    pub fn registries(&self) -> &[RegistryEntry] {
        &self.registries
    }

    fn add(&mut self, text: &str, path: &Path) -> Result<()> {
        let at = |span: Option<Range<usize>>, message: String| {
            let (line, column) = match span {
                Some(span) => {
                    let (l, c) = line_column(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            Error::Config {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: FileV2 =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().to_owned()))?;
        let mut entries = Vec::new();
        if let Some(v1) = &file.registries {
            if !file.registry.is_empty() {
                return Err(at(
                    Some(v1.span()),
                    "mixing the version 1 `[registries.*]` tables with version 2 `[[registry]]`"
                        .into(),
                ));
            }
            let v1 = v1.get_ref();
            let list =
                |l: &Option<ListV1>| l.as_ref().map(|l| l.registries.clone()).unwrap_or_default();
            for (host, insecure, blocked) in list(&v1.insecure)
                .into_iter()
                .map(|h| (h, true, false))
                .chain(list(&v1.block).into_iter().map(|h| (h, false, true)))
            {
                match entries
                    .iter_mut()
                    .find(|e: &&mut RegistryEntry| e.prefix == host)
                {
                    Some(e) => {
                        e.insecure = e.insecure.or(Some(insecure).filter(|i| *i));
                        e.blocked |= blocked;
                    }
                    None => entries.push(RegistryEntry {
                        prefix: host.clone(),
                        location: host,
                        insecure: Some(insecure).filter(|i| *i),
                        blocked,
                        mirror_by_digest_only: false,
                        mirrors: Vec::new(),
                        file: path.to_owned(),
                    }),
                }
            }
        }
        for table in &file.registry {
            let span = table.span();
            let r = table.get_ref();
            let (prefix, prefix_span) = match (&r.prefix, &r.location) {
                (Some(p), _) if !p.get_ref().is_empty() => (p.get_ref().clone(), p.span()),
                (_, Some(l)) if !l.get_ref().is_empty() => (l.get_ref().clone(), l.span()),
                _ => {
                    return Err(at(
                        Some(span),
                        "a [[registry]] needs a prefix or a location".into(),
                    ));
                }
            };
            let wildcard = prefix.starts_with("*.");
            check_name(&prefix, wildcard)
                .map_err(|m| at(Some(prefix_span.clone()), format!("prefix {prefix:?}: {m}")))?;
            let location = match &r.location {
                Some(l) => {
                    check_name(l.get_ref(), false).map_err(|m| {
                        at(Some(l.span()), format!("location {:?}: {m}", l.get_ref()))
                    })?;
                    l.get_ref().clone()
                }
                None if wildcard => String::new(),
                None => prefix.clone(),
            };
            let mut mirrors = Vec::new();
            for m in &r.mirror {
                let mr = m.get_ref();
                check_name(mr.location.get_ref(), false).map_err(|msg| {
                    at(
                        Some(mr.location.span()),
                        format!("mirror location {:?}: {msg}", mr.location.get_ref()),
                    )
                })?;
                let pull_from_mirror = match &mr.pull_from_mirror {
                    None => PullFromMirror::All,
                    Some(v) => {
                        if r.mirror_by_digest_only.is_some() {
                            // "this per-mirror setting is allowed only when
                            // `mirror-by-digest-only` is not configured for the primary
                            // registry."
                            return Err(at(
                                Some(v.span()),
                                "pull-from-mirror with mirror-by-digest-only set on the registry"
                                    .into(),
                            ));
                        }
                        match v.get_ref().as_str() {
                            "" | "all" => PullFromMirror::All,
                            "digest-only" => PullFromMirror::DigestOnly,
                            "tag-only" => PullFromMirror::TagOnly,
                            other => {
                                return Err(at(
                                    Some(v.span()),
                                    format!(
                                        "pull-from-mirror {other:?}: expected all, digest-only or tag-only"
                                    ),
                                ));
                            }
                        }
                    }
                };
                mirrors.push(Mirror {
                    location: mr.location.get_ref().clone(),
                    insecure: mr.insecure,
                    pull_from_mirror,
                });
            }
            if entries.iter().any(|e: &RegistryEntry| e.prefix == prefix) {
                return Err(at(
                    Some(prefix_span),
                    format!("a second [[registry]] with prefix {prefix:?} in one file"),
                ));
            }
            entries.push(RegistryEntry {
                prefix,
                location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirror_by_digest_only: r.mirror_by_digest_only.unwrap_or(false),
                mirrors,
                file: path.to_owned(),
            });
        }
        for e in entries {
            match self
                .registries
                .iter_mut()
                .find(|have| have.prefix == e.prefix)
            {
                Some(have) => *have = e,
                None => self.registries.push(e),
            }
        }
        self.files.push(path.to_owned());
        Ok(())
    }

    /// The `[[registry]]` table `reference` falls under: the longest matching prefix.
    pub fn find(&self, reference: &Reference) -> Option<&RegistryEntry> {
        let name = reference.to_string();
        self.registries
            .iter()
            .filter_map(|e| e.match_len(&name).map(|n| (n, e)))
            .max_by_key(|(n, _)| *n)
            .map(|(_, e)| e)
    }

    /// Where to pull `reference` from, in order: the mirrors that apply ("The mirrors are
    /// attempted in the specified order; the first one that can be contacted and contains
    /// the image will be used"), then the primary location ("if none of the mirrors contains
    /// the image, the primary location ... is tried last"). [`Error::Blocked`] when the
    /// table says `blocked` ("pulling images with matching names is forbidden").
    pub fn pull_endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>> {
        let Some(entry) = self.find(reference) else {
            return Ok(vec![Endpoint {
                reference: reference.clone(),
                insecure: None,
                mirror: false,
            }]);
        };
        if entry.blocked {
            return Err(blocked(reference, entry));
        }
        let name = reference.to_string();
        let by_digest = reference.digest().is_some();
        let mut out = Vec::new();
        for m in &entry.mirrors {
            // "If `true`, mirrors will only be used during pulling if the image reference
            // includes a digest." / pull-from-mirror digest-only, tag-only.
            let applies = if entry.mirror_by_digest_only {
                by_digest
            } else {
                match m.pull_from_mirror {
                    PullFromMirror::All => true,
                    PullFromMirror::DigestOnly => by_digest,
                    PullFromMirror::TagOnly => !by_digest,
                }
            };
            if applies {
                out.push(Endpoint {
                    reference: rewritten(&entry.rewrite(&m.location, &name), entry)?,
                    insecure: m.insecure,
                    mirror: true,
                });
            }
        }
        let location = if entry.location.is_empty() {
            name.clone()
        } else {
            entry.rewrite(&entry.location, &name)
        };
        out.push(Endpoint {
            reference: rewritten(&location, entry)?,
            insecure: entry.insecure,
            mirror: false,
        });
        Ok(out)
    }

    /// Where to push `reference`: itself ("Redirection and mirrors are currently processed
    /// only when reading images, not when pushing"), with the table's `insecure`;
    /// [`Error::Blocked`] when the table says `blocked`, as containers/image refuses.
    pub fn push_endpoint(&self, reference: &Reference) -> Result<Endpoint> {
        let entry = self.find(reference);
        if let Some(e) = entry.filter(|e| e.blocked) {
            return Err(blocked(reference, e));
        }
        Ok(Endpoint {
            reference: reference.clone(),
            insecure: entry.and_then(|e| e.insecure),
            mirror: false,
        })
    }
}

fn blocked(reference: &Reference, entry: &RegistryEntry) -> Error {
    Error::Blocked {
        reference: reference.to_string(),
        prefix: entry.prefix.clone(),
        file: entry.file.clone(),
    }
}

fn rewritten(name: &str, entry: &RegistryEntry) -> Result<Reference> {
    name.parse().map_err(|e: Error| Error::Config {
        path: entry.file.clone(),
        line: None,
        column: None,
        message: format!(
            "[[registry]] prefix {:?} rewrites to {name:?}, not a reference: {e}",
            entry.prefix
        ),
    })
}

/// Checks a prefix or location: `host[:port][/namespace...][/repo][(:tag|@digest)]`, or
/// `*.host` for a wildcard prefix ("`*.example.com` is valid but `example.*.com`,
/// `*.example.com/foo` and `*.example.com:5000/foo/bar:baz` are not").
fn check_name(name: &str, wildcard: bool) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("white space in it".into());
    }
    if wildcard {
        let domain = &name[2..];
        if domain.is_empty() || domain.contains(['*', '/', ':', '@']) {
            return Err("a wildcard prefix is `*.` and a domain, nothing more".into());
        }
        return Ok(());
    }
    if name.contains('*') {
        return Err("`*` is allowed only as `*.` at the start of a prefix".into());
    }
    if name.starts_with(['/', ':', '@', '.']) || name.ends_with('/') {
        return Err("expected host[:port][/namespace...][/repo][:tag|@digest]".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(conf: &RegistriesConf, r: &str) -> Vec<String> {
        conf.pull_endpoints(&r.parse().unwrap())
            .unwrap()
            .iter()
            .map(|e| e.reference.to_string())
            .collect()
    }

    #[test]
    fn the_man_page_example() {
        let conf = RegistriesConf::parse(
            r#"
unqualified-search-registries = ["example.com"]

[[registry]]
prefix = "example.com/foo"
insecure = false
blocked = false
location = "internal-registry-for-example.com/bar"

[[registry.mirror]]
location = "example-mirror-0.local/mirror-for-foo"

[[registry.mirror]]
location = "example-mirror-1.local/mirrors/foo"
insecure = true

[[registry]]
location = "registry.com"

[[registry.mirror]]
location = "mirror.registry.com"
"#,
            "/etc/containers/registries.conf",
        )
        .unwrap();
        assert_eq!(
            places(&conf, "example.com/foo/image:latest"),
            [
                "example-mirror-0.local/mirror-for-foo/image:latest",
                "example-mirror-1.local/mirrors/foo/image:latest",
                "internal-registry-for-example.com/bar/image:latest",
            ]
        );
        let e = conf
            .pull_endpoints(&"example.com/foo/image:latest".parse().unwrap())
            .unwrap();
        assert_eq!(e[1].insecure, Some(true));
        assert!(e[1].mirror && !e[2].mirror);
        // "a mirror is associated only with the current [[registry]] TOML table".
        assert_eq!(
            places(&conf, "registry.com/image:latest"),
            [
                "mirror.registry.com/image:latest",
                "registry.com/image:latest"
            ]
        );
        // Not under any prefix: as it is. A prefix matches only up to a separator.
        assert_eq!(
            places(&conf, "example.com/foobar:1"),
            ["example.com/foobar:1"]
        );
    }

    #[test]
    fn longest_prefix_wildcards_and_mirror_filters() {
        let conf = RegistriesConf::parse(
            r#"
[[registry]]
prefix = "reg.lan"
location = "a.lan"
[[registry]]
prefix = "reg.lan/team"
location = "b.lan/x"
[[registry.mirror]]
location = "digests.lan/x"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.lan/x"
pull-from-mirror = "tag-only"
[[registry]]
prefix = "*.corp.example"
blocked = true
[[registry]]
prefix = "docker.io/library/busybox"
location = "cache.lan/busybox"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m.lan/busybox"
"#,
            "r.conf",
        )
        .unwrap();
        assert_eq!(places(&conf, "reg.lan/other:1"), ["a.lan/other:1"]);
        assert_eq!(
            places(&conf, "reg.lan/team/app:1"),
            ["tags.lan/x/app:1", "b.lan/x/app:1"]
        );
        let digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(
            places(&conf, &format!("reg.lan/team/app@{digest}")),
            [
                format!("digests.lan/x/app@{digest}"),
                format!("b.lan/x/app@{digest}")
            ]
        );
        assert_eq!(places(&conf, "busybox:1"), ["cache.lan/busybox:1"]);
        assert_eq!(
            places(&conf, &format!("busybox@{digest}")),
            [
                format!("m.lan/busybox@{digest}"),
                format!("cache.lan/busybox@{digest}")
            ]
        );
        for blocked in ["a.corp.example/x:1", "b.a.corp.example:5000/x:1"] {
            let e = conf.pull_endpoints(&blocked.parse().unwrap()).unwrap_err();
            assert!(matches!(e, Error::Blocked { .. }), "{e}");
            assert!(e.to_string().contains("*.corp.example"), "{e}");
            assert!(conf.push_endpoint(&blocked.parse().unwrap()).is_err());
        }
        assert_eq!(places(&conf, "corp.example/x:1"), ["corp.example/x:1"]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = RegistriesConf::parse(
            "[[registry]]\nprefix = \"a.lan\"\nlocation = \n",
            "/x/r.conf",
        )
        .unwrap_err();
        let Error::Config {
            path, line, column, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(path, Path::new("/x/r.conf"));
        assert_eq!((*line, *column), (Some(3), Some(12)), "{e}");
        assert!(e.to_string().starts_with("/x/r.conf:3:12: "), "{e}");
        let e = RegistriesConf::parse(
            "[[registry]]\nprefix = \"a.lan\"\n\n[[registry.mirror]]\nlocation = \"m.lan\"\npull-from-mirror = \"sometimes\"\n",
            "r.conf",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("r.conf:6:20: "), "{e}");
        let e = RegistriesConf::parse("[[registry]]\nprefix = \"example.*.com\"\n", "r.conf")
            .unwrap_err();
        assert!(e.to_string().starts_with("r.conf:2:10: "), "{e}");
        let e = RegistriesConf::parse("[[registry]]\ninsecure = true\n", "r.conf").unwrap_err();
        assert!(e.to_string().contains("prefix or a location"), "{e}");
        let e = RegistriesConf::parse("[[registry]]\nblocked = \"yes\"\n", "r.conf").unwrap_err();
        assert!(e.to_string().starts_with("r.conf:2:11: "), "{e}");
    }

    #[test]
    fn version_1_lists_and_drop_ins() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("registries.conf");
        let drop_in = dir.path().join("10-more.conf");
        std::fs::write(
            &main,
            "[registries.insecure]\nregistries = ['reg.lan']\n[registries.block]\nregistries = ['bad.lan']\n",
        )
        .unwrap();
        std::fs::write(&drop_in, "[[registry]]\nlocation = \"bad.lan\"\n").unwrap();
        let conf = RegistriesConf::load(std::slice::from_ref(&main)).unwrap();
        assert_eq!(
            conf.find(&"reg.lan/a:1".parse().unwrap())
                .unwrap()
                .insecure(),
            Some(true)
        );
        assert!(
            conf.pull_endpoints(&"bad.lan/a:1".parse().unwrap())
                .is_err()
        );
        // The drop-in's table replaces the one of the same prefix.
        let conf = RegistriesConf::load(&[main, drop_in.clone()]).unwrap();
        assert_eq!(places(&conf, "bad.lan/a:1"), ["bad.lan/a:1"]);
        assert_eq!(conf.files().len(), 2);
        let e = RegistriesConf::load(&[dir.path().join("missing.conf")]).unwrap_err();
        assert!(e.to_string().contains("missing.conf"), "{e}");
    }
}
