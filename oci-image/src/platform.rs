//! Platforms: parsing `os/arch[/variant]`, normalising, and choosing from an index.
//!
//! Values follow the image-spec's use of Go's `GOOS`/`GOARCH` names and its
//! [platform variants](https://github.com/opencontainers/image-spec/blob/v1.1.1/image-index.md#platform-variants)
//! table. Normalisation maps the aliases other tools use (`x86_64`, `aarch64`, `armhf`, ...) to
//! those names and fills the variants that are implied: `arm64` means `arm64/v8` and `arm`
//! means `arm/v7`, as containerd and the Docker CLI treat them.

use oci_spec::image::{Arch, Descriptor, ImageIndex, Os, Platform};

use crate::{ContentKind, Error, MediaTypeExt, Result};

/// Parses `os/arch[/variant]` (for example `linux/arm64/v8`) and normalises it.
///
/// ```
/// let p = ocikit_image::parse_platform("linux/aarch64")?;
/// assert_eq!(ocikit_image::platform_to_string(&p), "linux/arm64/v8");
/// assert!(ocikit_image::parse_platform("linux").is_err());
/// # Ok::<_, ocikit_image::Error>(())
/// ```
pub fn parse_platform(text: &str) -> Result<Platform> {
    let err = |reason: &str| Error::InvalidPlatform {
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let parts: Vec<&str> = text.split('/').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(err("expected os/arch or os/arch/variant"));
    }
    for part in &parts {
        if part.is_empty() {
            return Err(err("empty component"));
        }
        if !part
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
        {
            return Err(err(
                "components may hold only letters, digits, '.', '_' and '-'",
            ));
        }
    }
    let mut p = Platform::default();
    p.set_os(Os::from(parts[0].to_ascii_lowercase().as_str()));
    p.set_architecture(Arch::from(parts[1].to_ascii_lowercase().as_str()));
    p.set_variant(parts.get(2).map(|v| v.to_ascii_lowercase()));
    Ok(normalize_platform(&p))
}

/// Maps aliases to the spec's names and fills implied variants.
///
/// - os: `macos` → `darwin`.
/// - arch: `x86_64`/`x86-64` → `amd64`; `aarch64` → `arm64`; `i386`/`i686`/`x86` → `386`;
///   `armhf` → `arm/v7`; `armel` → `arm/v6`; `armv5l`..`armv8l` → `arm/vN` (`arm/v8` stays
///   32-bit `arm`); `aarch64_be` is left alone.
/// - variant: `arm64` with none or `8` → `v8`; `arm` with none → `v7`; a bare number `N` on arm
///   → `vN`.
pub fn normalize_platform(p: &Platform) -> Platform {
    let mut out = p.clone();
    let os = p.os().to_string().to_ascii_lowercase();
    if os == "macos" {
        out.set_os(Os::Darwin);
    }
    let arch = p.architecture().to_string().to_ascii_lowercase();
    let mut variant = p.variant().clone().map(|v| v.to_ascii_lowercase());
    let arch = match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "i386" | "i686" | "x86" | "386" => "386",
        "armhf" => {
            variant.get_or_insert_with(|| "v7".into());
            "arm"
        }
        "armel" => {
            variant.get_or_insert_with(|| "v6".into());
            "arm"
        }
        a @ ("armv5l" | "armv6l" | "armv7l" | "armv8l") => {
            variant = Some(format!("v{}", &a[4..5]));
            "arm"
        }
        other => other,
    }
    .to_owned();
    match arch.as_str() {
        "arm64" => {
            if matches!(variant.as_deref(), None | Some("8") | Some("v8")) {
                variant = Some("v8".into());
            }
        }
        "arm" => match variant.as_deref() {
            None => variant = Some("v7".into()),
            Some(v) if v.len() == 1 && v.as_bytes()[0].is_ascii_digit() => {
                variant = Some(format!("v{v}"))
            }
            _ => {}
        },
        _ => {}
    }
    out.set_architecture(Arch::from(arch.as_str()));
    out.set_variant(variant);
    out
}

/// Formats a platform as `os/arch[/variant]`.
pub fn platform_to_string(p: &Platform) -> String {
    match p.variant() {
        Some(v) if !v.is_empty() => format!("{}/{}/{}", p.os(), p.architecture(), v),
        _ => format!("{}/{}", p.os(), p.architecture()),
    }
}

/// The platform of the running program (`linux/amd64` on this machine), normalised.
pub fn host_platform() -> Platform {
    let mut p = Platform::default();
    p.set_os(Os::from(match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }));
    p.set_architecture(Arch::default());
    if cfg!(target_arch = "arm") {
        // The variant of a 32-bit ARM host is not known at compile time beyond its target
        // features; v7 is what the common targets (armv7-*) are.
        p.set_variant(Some(
            if cfg!(target_feature = "v7") {
                "v7"
            } else {
                "v6"
            }
            .into(),
        ));
    }
    normalize_platform(&p)
}

/// How well a candidate platform serves a wanted one: `None` when it cannot run there, and a
/// larger number for a better fit.
///
/// os and architecture must be equal after normalisation. For variants, an exact match is
/// best; on `arm`, an older variant runs on a newer CPU (`v6` on a `v7` host, never the
/// reverse); a candidate without a variant runs anywhere on its architecture but ranks last.
/// When the wanted platform has no variant, any variant of the architecture matches, the
/// normalised default (`v8` for arm64, `v7` for arm) best.
pub fn platform_score(wanted: &Platform, candidate: &Platform) -> Option<u32> {
    let w = normalize_platform(wanted);
    let c = normalize_platform(candidate);
    if w.os() != c.os() || w.architecture() != c.architecture() {
        return None;
    }
    let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok());
    match (w.variant().as_deref(), c.variant().as_deref()) {
        (Some(wv), Some(cv)) if wv == cv => Some(100),
        (_, None) => Some(1),
        (None, Some(_)) => Some(2),
        (Some(wv), Some(cv)) => {
            if w.architecture() == &Arch::ARM {
                match (level(wv), level(cv)) {
                    // Older ARM variants run on newer CPUs; closer is better.
                    (Some(wl), Some(cl)) if cl < wl => Some(50 - (wl - cl).min(40)),
                    _ => None,
                }
            } else {
                None
            }
        }
    }
}

/// True when `candidate` can serve `wanted` (see [`platform_score`]).
pub fn platform_matches(wanted: &Platform, candidate: &Platform) -> bool {
    platform_score(wanted, candidate).is_some()
}

/// Picks the manifest of `index` that best serves `wanted`.
///
/// Only descriptors of manifests and indexes are candidates; those whose platform is
/// `unknown/unknown` (build attestations) never are. A descriptor without a platform is chosen
/// only when it is the index's only candidate. When nothing matches, the error lists the
/// platforms the index offers.
///
/// ```
/// use ocikit_image::{parse_platform, select_manifest};
/// use oci_spec::image::ImageIndex;
///
/// let index: ImageIndex = serde_json::from_str(r#"{
///   "schemaVersion": 2,
///   "manifests": [
///     {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
///      "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
///      "platform": {"os": "linux", "architecture": "amd64"}},
///     {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
///      "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
///      "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
///   ]}"#).unwrap();
/// let pick = select_manifest(&index, &parse_platform("linux/aarch64")?)?;
/// assert!(pick.digest().to_string().ends_with("2222"));
/// let err = select_manifest(&index, &parse_platform("linux/s390x")?).unwrap_err();
/// assert!(err.to_string().contains("linux/amd64, linux/arm64/v8"));
/// # Ok::<_, ocikit_image::Error>(())
/// ```
pub fn select_manifest<'a>(index: &'a ImageIndex, wanted: &Platform) -> Result<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| {
            matches!(
                d.media_type().kind(),
                ContentKind::Manifest | ContentKind::Index | ContentKind::Other
            )
        })
        .filter(|d| {
            d.platform().as_ref().is_none_or(|p| {
                p.os().to_string() != "unknown" && p.architecture().to_string() != "unknown"
            })
        })
        .collect();
    let best = candidates
        .iter()
        .filter_map(|d| match d.platform() {
            Some(p) => platform_score(wanted, p).map(|s| (s, *d)),
            None if candidates.len() == 1 => Some((0, *d)),
            None => None,
        })
        // The first of equally good candidates wins, as in the index's order.
        .fold(None::<(u32, &Descriptor)>, |best, (s, d)| match best {
            Some((bs, _)) if bs >= s => best,
            _ => Some((s, d)),
        });
    match best {
        Some((_, d)) => Ok(d),
        None => Err(Error::NoMatchingPlatform {
            wanted: platform_to_string(&normalize_platform(wanted)),
            available: candidates
                .iter()
                .filter_map(|d| d.platform().as_ref())
                .map(|p| platform_to_string(&normalize_platform(p)))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        parse_platform(s).unwrap()
    }

    #[test]
    fn normalisation() {
        let cases = [
            ("linux/x86_64", "linux/amd64"),
            ("linux/amd64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/arm64/8", "linux/arm64/v8"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/armv7l", "linux/arm/v7"),
            ("linux/i686", "linux/386"),
            ("Linux/AMD64", "linux/amd64"),
            ("macos/arm64", "darwin/arm64/v8"),
            ("linux/riscv64", "linux/riscv64"),
            ("windows/amd64", "windows/amd64"),
        ];
        for (input, want) in cases {
            assert_eq!(platform_to_string(&p(input)), want, "{input}");
        }
    }

    #[test]
    fn invalid_platforms() {
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
        ] {
            assert!(
                matches!(parse_platform(bad), Err(Error::InvalidPlatform { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_is_linux_amd64_here() {
        let h = host_platform();
        assert_eq!(h.os(), &Os::from(std::env::consts::OS));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(platform_to_string(&h), "linux/amd64");
    }

    #[test]
    fn scores() {
        assert!(platform_matches(&p("linux/arm64"), &p("linux/arm64/v8")));
        assert!(!platform_matches(&p("linux/arm64"), &p("linux/amd64")));
        assert!(!platform_matches(&p("linux/amd64"), &p("windows/amd64")));
        // Older ARM runs on newer, not the reverse.
        assert!(platform_matches(&p("linux/arm/v7"), &p("linux/arm/v6")));
        assert!(!platform_matches(&p("linux/arm/v6"), &p("linux/arm/v7")));
        assert!(
            platform_score(&p("linux/arm/v7"), &p("linux/arm/v7"))
                > platform_score(&p("linux/arm/v7"), &p("linux/arm/v6"))
        );
        assert!(
            platform_score(&p("linux/arm/v7"), &p("linux/arm/v6"))
                > platform_score(&p("linux/arm/v7"), &p("linux/arm/v5"))
        );
    }

    /// os, architecture, variant.
    type Plat<'a> = (&'a str, &'a str, Option<&'a str>);

    fn index(entries: &[(&str, Option<Plat<'_>>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (mt, plat))| {
                let mut d = serde_json::json!({
                    "mediaType": mt,
                    "size": 10,
                    "digest": format!("sha256:{:064x}", i + 1),
                });
                if let Some((os, arch, variant)) = plat {
                    let mut pl = serde_json::json!({"os": os, "architecture": arch});
                    if let Some(v) = variant {
                        pl["variant"] = (*v).into();
                    }
                    d["platform"] = pl;
                }
                d
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap()
    }

    const M: &str = "application/vnd.oci.image.manifest.v1+json";

    fn picked(idx: &ImageIndex, want: &str) -> u64 {
        let d = select_manifest(idx, &p(want)).unwrap();
        u64::from_str_radix(d.digest().digest(), 16).unwrap()
    }

    #[test]
    fn selection_prefers_exact_then_compatible() {
        let idx = index(&[
            (M, Some(("linux", "amd64", None))),
            (M, Some(("linux", "arm", Some("v6")))),
            (M, Some(("linux", "arm", Some("v7")))),
            (M, Some(("linux", "arm64", Some("v8")))),
            (M, Some(("unknown", "unknown", None))),
        ]);
        assert_eq!(picked(&idx, "linux/amd64"), 1);
        assert_eq!(picked(&idx, "linux/arm/v7"), 3);
        assert_eq!(picked(&idx, "linux/arm/v6"), 2);
        assert_eq!(picked(&idx, "linux/arm/v8"), 3);
        assert_eq!(picked(&idx, "linux/arm64"), 4);
        let e = select_manifest(&idx, &p("linux/ppc64le")).unwrap_err();
        match e {
            Error::NoMatchingPlatform { wanted, available } => {
                assert_eq!(wanted, "linux/ppc64le");
                assert_eq!(
                    available,
                    [
                        "linux/amd64",
                        "linux/arm/v6",
                        "linux/arm/v7",
                        "linux/arm64/v8"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_manifest_list_entries_are_candidates() {
        let idx = index(&[
            (
                crate::media_type::docker::MANIFEST,
                Some(("linux", "amd64", None)),
            ),
            (
                crate::media_type::docker::MANIFEST,
                Some(("linux", "arm64", None)),
            ),
        ]);
        assert_eq!(picked(&idx, "linux/arm64/v8"), 2);
    }

    #[test]
    fn platformless_entry_only_when_alone() {
        let single = index(&[(M, None)]);
        assert_eq!(picked(&single, "linux/s390x"), 1);
        let two = index(&[(M, None), (M, Some(("linux", "amd64", None)))]);
        assert_eq!(picked(&two, "linux/amd64"), 2);
        assert!(select_manifest(&two, &p("linux/arm64")).is_err());
    }

    #[test]
    fn layers_in_an_index_are_not_candidates() {
        let idx = index(&[("application/vnd.oci.image.layer.v1.tar+gzip", None)]);
        assert!(select_manifest(&idx, &p("linux/amd64")).is_err());
    }
}
