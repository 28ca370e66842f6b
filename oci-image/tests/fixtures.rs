//! Parsing documents that real tools wrote: umoci's OCI manifest, config and layout index,
//! skopeo's Docker schema 2 and schema 1 conversions, and multi-platform documents that point
//! at those manifests (see `fixtures/README.md` for how each was made).

use std::path::Path;

use ocikit_image::oci_spec::image::MediaType;
use ocikit_image::{
    AnyManifest, Config, ContentKind, Error, Format, Index, Manifest, MediaTypeExt, docker,
    parse_digest, parse_platform, select_manifest, sha256,
};
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The digests `fixtures/README.md` records for each file.
const DIGESTS: &[(&str, &str)] = &[
    (
        "oci-manifest.json",
        "sha256:5cd515739a304f7e4583cda22cdce369e16940fc393af4f02a04f972b5062d28",
    ),
    (
        "oci-config.json",
        "sha256:332f0e710fa743ec32268cc11179c1995d7560ed8358a4156b6f2f4c9ec2d087",
    ),
    (
        "oci-layout-index.json",
        "sha256:21ff7db47b0b7260ef777871696b3b4281bb7658b6107a65756da1bad96681e8",
    ),
    (
        "docker-v2s2-manifest.json",
        "sha256:82037ef0a2d7cca41dc298d110933f9cf7065ace7b218ee9f3244771a7311b67",
    ),
    (
        "oci-index-two-platforms.json",
        "sha256:0a073be586d355d1120f53aca0a68171d0a99f6626fc1afaca3a00510addaec5",
    ),
    (
        "docker-manifest-list.json",
        "sha256:a89f44b3942953398438ffb5dffa07ef82276444440635faf3ca544fbbbc07d4",
    ),
];

fn digest_of(name: &str) -> &'static str {
    DIGESTS.iter().find(|(n, _)| *n == name).unwrap().1
}

/// An edit that changes nothing must give back the same JSON: no field, known or unknown,
/// is lost on the way through the typed value.
fn assert_lossless<T: ocikit_image::SpecDocument>(mut doc: ocikit_image::Document<T>) {
    let before: Value = serde_json::from_slice(doc.raw()).unwrap();
    doc.edit(|_| {}).unwrap();
    let after: Value = serde_json::from_slice(doc.raw()).unwrap();
    assert_eq!(before, after);
}

#[test]
fn umoci_manifest() {
    let raw = fixture("oci-manifest.json");
    let m = Manifest::from_bytes(raw.clone()).unwrap();
    assert_eq!(m.raw(), raw.as_slice());
    assert_eq!(m.digest().to_string(), digest_of("oci-manifest.json"));
    assert_eq!(m.media_type(), &MediaType::ImageManifest);
    assert!(!m.is_docker());
    assert_eq!(
        m.config().digest().to_string(),
        digest_of("oci-config.json")
    );
    assert_eq!(m.layers().len(), 1);
    assert_eq!(
        m.layers()[0].media_type().compression(),
        Some(ocikit_image::Compression::Gzip)
    );
    assert_lossless(m);
}

#[test]
fn umoci_config() {
    let raw = fixture("oci-config.json");
    let c = Config::from_bytes(raw.clone()).unwrap();
    assert_eq!(c.digest().to_string(), digest_of("oci-config.json"));
    assert_eq!(c.architecture().to_string(), "amd64");
    let cfg = c.config().as_ref().unwrap();
    assert_eq!(
        cfg.entrypoint().as_deref(),
        Some(&["/bin/sh".to_owned(), "-c".to_owned()][..])
    );
    assert!(
        cfg.env()
            .as_ref()
            .unwrap()
            .contains(&"OCIKIT_FIXTURE=1".to_owned())
    );
    assert_eq!(c.diff_ids().len(), 1);
    assert_eq!(c.history().as_ref().unwrap().len(), 2);
    assert_lossless(c);
}

#[test]
fn umoci_layout_index() {
    let raw = fixture("oci-layout-index.json");
    let i = Index::from_bytes(raw).unwrap();
    assert_eq!(i.digest().to_string(), digest_of("oci-layout-index.json"));
    // A layout's index.json has no mediaType field; the default is the OCI index.
    assert_eq!(i.media_type(), &MediaType::ImageIndex);
    let names: Vec<&str> = i
        .manifests()
        .iter()
        .filter_map(|d| d.annotations().as_ref())
        .filter_map(|a| a.get(ocikit_image::oci_spec::image::ANNOTATION_REF_NAME))
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["amd64", "arm64"]);
    assert_eq!(
        i.manifests()[0].digest().to_string(),
        digest_of("oci-manifest.json")
    );
    assert_lossless(i);
}

#[test]
fn skopeo_docker_schema2_manifest_and_config() {
    let raw = fixture("docker-v2s2-manifest.json");
    let m = Manifest::from_bytes(raw).unwrap();
    assert_eq!(
        m.digest().to_string(),
        digest_of("docker-v2s2-manifest.json")
    );
    assert!(m.is_docker());
    assert_eq!(m.media_type().to_string(), docker::MANIFEST);
    assert_eq!(m.config().media_type().to_string(), docker::CONFIG);
    assert_eq!(m.config().media_type().to_oci(), MediaType::ImageConfig);
    assert_eq!(
        m.layers()[0].media_type().to_oci(),
        MediaType::ImageLayerGzip
    );
    assert_eq!(m.layers()[0].media_type().format(), Some(Format::Docker));

    // The config is read with the media type its descriptor gives.
    let config =
        Config::from_bytes_as(fixture("docker-v2s2-config.json"), m.config().media_type()).unwrap();
    assert_eq!(config.digest(), m.config().digest());
    assert_eq!(config.size(), m.config().size());
    assert_eq!(config.media_type().to_string(), docker::CONFIG);

    // Asking for it as an OCI manifest is a media type conflict.
    assert!(matches!(
        Manifest::from_bytes_as(
            fixture("docker-v2s2-manifest.json"),
            &MediaType::ImageManifest
        ),
        Err(Error::UnexpectedMediaType { .. })
    ));
    assert_lossless(m);
}

#[test]
fn skopeo_schema1_is_refused() {
    let raw = fixture("docker-v2s1-manifest.json");
    for result in [
        Manifest::from_bytes(raw.clone()).map(|_| ()),
        AnyManifest::from_bytes(raw.clone(), None).map(|_| ()),
        AnyManifest::from_bytes(
            raw.clone(),
            Some(&MediaType::from(docker::MANIFEST_V1_SIGNED)),
        )
        .map(|_| ()),
    ] {
        match result {
            Err(e @ Error::SchemaV1 { .. }) => {
                assert!(e.to_string().contains("schema 1"), "{e}");
            }
            other => panic!("schema 1 was not refused: {other:?}"),
        }
    }
}

#[test]
fn two_platform_index_and_manifest_list() {
    for (name, docker_list) in [
        ("oci-index-two-platforms.json", false),
        ("docker-manifest-list.json", true),
    ] {
        let any = AnyManifest::from_bytes(fixture(name), None).unwrap();
        let AnyManifest::Index(index) = any else {
            panic!("{name} was not read as an index");
        };
        assert_eq!(index.digest().to_string(), digest_of(name));
        assert_eq!(index.is_docker(), docker_list, "{name}");
        assert_eq!(index.media_type().kind(), ContentKind::Index);

        let amd = select_manifest(&index, &parse_platform("linux/x86_64").unwrap()).unwrap();
        let arm = select_manifest(&index, &parse_platform("linux/aarch64").unwrap()).unwrap();
        assert_ne!(amd.digest(), arm.digest());
        if !docker_list {
            assert_eq!(amd.digest().to_string(), digest_of("oci-manifest.json"));
        } else {
            assert_eq!(
                amd.digest().to_string(),
                digest_of("docker-v2s2-manifest.json")
            );
        }
        match select_manifest(&index, &parse_platform("linux/s390x").unwrap()) {
            Err(Error::NoMatchingPlatform { available, .. }) => {
                assert_eq!(available, ["linux/amd64", "linux/arm64/v8"]);
            }
            other => panic!("{other:?}"),
        }
        assert_lossless(index);
    }
}

#[test]
fn fixture_digests_match_the_readme() {
    for (name, want) in DIGESTS {
        assert_eq!(
            sha256(&fixture(name)),
            parse_digest(want).unwrap(),
            "{name}"
        );
    }
}
