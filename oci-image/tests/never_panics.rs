//! Every parse entry point returns an error, never panics, on arbitrary input: random bytes,
//! and (more searching) JSON-shaped text built from the fields the parsers look at.

use ocikit_image::oci_spec::image::{Descriptor, MediaType};
use ocikit_image::{
    AnyManifest, Config, DEFAULT_MAX_DOCUMENT_SIZE, Index, Manifest, TagOrDigest, parse_digest,
    parse_platform, sha256,
};
use proptest::prelude::*;

fn every_parser(bytes: &[u8]) {
    let _ = Manifest::from_bytes(bytes.to_vec());
    let _ = Index::from_bytes(bytes.to_vec());
    let _ = Config::from_bytes(bytes.to_vec());
    let _ = AnyManifest::from_bytes(bytes.to_vec(), None);
    let _ = AnyManifest::from_bytes(bytes.to_vec(), Some(&MediaType::ImageIndex));
    let _ = Manifest::from_reader(bytes, None, 64);
    let d = Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, sha256(bytes));
    let _ = AnyManifest::from_descriptor_reader(bytes, &d, DEFAULT_MAX_DOCUMENT_SIZE);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = parse_digest(text);
        let _ = parse_platform(text);
        let _ = text.parse::<TagOrDigest>();
    }
}

/// JSON values drawn from the vocabulary of manifests, so that the generator reaches past the
/// first `{`.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let keys = prop::sample::select(vec![
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "digest",
        "size",
        "urls",
        "data",
        "platform",
        "os",
        "architecture",
        "variant",
        "annotations",
        "subject",
        "artifactType",
        "rootfs",
        "type",
        "diff_ids",
        "history",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(2)),
        Just(serde_json::Value::from(u64::MAX)),
        prop::sample::select(vec![
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.empty.v1+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha512:00",
            "layers",
            "e30=",
            "",
        ])
        .prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec((keys.clone(), inner), 0..8).prop_map(|kv| {
                serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        every_parser(&bytes);
    }

    #[test]
    fn json_shaped_input(v in json_value()) {
        every_parser(&serde_json::to_vec(&v).unwrap());
    }
}
