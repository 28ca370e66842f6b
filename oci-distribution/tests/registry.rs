//! Push, pull, tags, referrers, mount and delete against the real docker-registry started by
//! `bash scripts/test.sh` (`OCIKIT_TEST_REGISTRY`), and the same against our own server
//! (feature `server`): every test runs twice, as `docker_registry::NAME` and
//! `ocikit_server::NAME`.

mod common;
mod support;

use std::io::Read;

use ocikit_distribution::oci_spec::image::{Descriptor, MediaType};
use ocikit_distribution::ocikit_image::{
    AnyManifest, ImageDestination, ImageSource, Manifest, TagOrDigest, parse_platform, sha256,
};
use ocikit_distribution::{BlobCopy, Error, ErrorCode, Reference, Repository};
use support::{RandomReader, any, client, index_of, push_image, random_descriptor, unique};

fn repo(addr: &str, prefix: &str) -> Repository {
    client()
        .repository_at(addr, &unique(prefix))
        .expect("valid name")
}

fn tag(t: &str) -> TagOrDigest {
    t.parse().unwrap()
}

fn ping_and_typed_errors(addr: &str, _ours: bool) {
    let r = repo(addr, "errors");
    r.client().ping(r.registry()).unwrap();
    let e = r.get_manifest(&tag("missing")).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.status(), Some(404));
    assert!(
        e.codes()
            .iter()
            .any(|c| matches!(c, ErrorCode::ManifestUnknown | ErrorCode::NameUnknown)),
        "{e:?}"
    );
    assert!(matches!(
        ocikit_distribution::ocikit_image::Error::from(e),
        ocikit_distribution::ocikit_image::Error::NotFound(_)
    ));
    // A manifest whose blobs are missing: MANIFEST_BLOB_UNKNOWN, status kept.
    let d = random_descriptor(7, 10, MediaType::ImageLayerGzip);
    let bogus = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": d, "layers": [d]});
    let m = Manifest::from_bytes(serde_json::to_vec(&bogus).unwrap()).unwrap();
    let e = r.put_manifest(&any(&m), Some(&tag("x"))).unwrap_err();
    assert!(matches!(e, Error::Registry { status: 400, .. }), "{e:?}");
    assert!(
        e.codes().contains(&&ErrorCode::ManifestBlobUnknown),
        "{e:?}"
    );
}

fn push_then_pull_an_image(addr: &str, _ours: bool) {
    let r = repo(addr, "image");
    let m = push_image(&r, "amd64", 1, &[1000, 300_000, 0]);
    let pushed = r.put_manifest(&any(&m), Some(&tag("v1"))).unwrap();
    assert_eq!(pushed.digest(), m.digest());

    let head = r.head_manifest(&tag("v1")).unwrap();
    assert_eq!(head.digest(), m.digest());
    assert_eq!(head.size(), m.raw().len() as u64);
    assert_eq!(head.media_type(), &MediaType::ImageManifest);

    let got = r.get_manifest(&tag("v1")).unwrap();
    assert_eq!(got.raw(), m.raw());
    assert_eq!(got.digest(), m.digest());
    let by_digest = r
        .get_manifest(&TagOrDigest::Digest(m.digest().clone()))
        .unwrap();
    assert_eq!(by_digest.digest(), m.digest());

    // Through the source trait: the image, its config, every layer verified.
    let img = r
        .fetch_image(&tag("v1"), &parse_platform("linux/arm64").unwrap())
        .unwrap();
    assert_eq!(img.manifest.digest(), m.digest());
    for (i, layer) in m.layers().iter().enumerate() {
        let mut got = Vec::new();
        r.open_blob(layer).unwrap().read_to_end(&mut got).unwrap();
        let mut want = Vec::new();
        RandomReader::new(1000 + i as u64, layer.size())
            .read_to_end(&mut want)
            .unwrap();
        assert_eq!(sha256(&got), sha256(&want));
        assert_eq!(r.blob_exists(layer.digest()).unwrap(), Some(layer.size()));
    }
    // Pushing again skips what exists.
    let first = &m.layers()[0];
    assert!(!r.push_blob(first, &mut std::io::empty()).unwrap());
}

fn push_then_pull_an_index_of_two_platforms(addr: &str, _ours: bool) {
    let r = repo(addr, "index");
    let amd = push_image(&r, "amd64", 2, &[5000]);
    let arm = push_image(&r, "arm64", 3, &[6000]);
    r.put_manifest(&any(&amd), None).unwrap();
    r.put_manifest(&any(&arm), None).unwrap();
    let index = index_of(&[(&amd, "amd64"), (&arm, "arm64")]);
    r.put_manifest(&AnyManifest::Index(index.clone()), Some(&tag("multi")))
        .unwrap();

    let head = r.resolve(&tag("multi")).unwrap();
    assert_eq!(head.digest(), index.digest());
    assert_eq!(head.media_type(), &MediaType::ImageIndex);
    for (arch, want) in [("amd64", &amd), ("arm64", &arm)] {
        let img = r
            .fetch_image(
                &tag("multi"),
                &parse_platform(&format!("linux/{arch}")).unwrap(),
            )
            .unwrap();
        assert_eq!(img.manifest.digest(), want.digest());
        assert_eq!(img.indexes[0].digest(), index.digest());
        assert_eq!(img.config.architecture().to_string(), arch);
    }
}

fn artifact_with_subject_is_found_through_the_referrers_tag(addr: &str, ours: bool) {
    let r = repo(addr, "referrers");
    let image = push_image(&r, "amd64", 4, &[100]);
    r.put_manifest(&any(&image), Some(&tag("app"))).unwrap();

    let mut artifacts = Vec::new();
    for (i, kind) in [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    ]
    .iter()
    .enumerate()
    {
        let payload = format!("payload {i}");
        let pd = Descriptor::new(
            MediaType::Other("text/plain".into()),
            payload.len() as u64,
            sha256(payload.as_bytes()),
        );
        r.push_blob_bytes(&pd, payload.as_bytes()).unwrap();
        let empty = Descriptor::new(MediaType::EmptyJSON, 2, sha256(b"{}"));
        r.push_blob_bytes(&empty, b"{}").unwrap();
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": kind,
            "config": empty,
            "layers": [pd],
            "subject": image.descriptor(),
            "annotations": {"org.example.n": i.to_string()},
        });
        let m = Manifest::from_bytes(serde_json::to_vec(&m).unwrap()).unwrap();
        r.put_manifest(&any(&m), None).unwrap();
        artifacts.push(m);
    }
    // Pushing one twice does not list it twice.
    r.put_manifest(&any(&artifacts[0]), None).unwrap();

    let all = r.referrers(image.digest(), None).unwrap();
    let mut digests: Vec<_> = all.iter().map(|d| d.digest().to_string()).collect();
    digests.sort();
    let mut want: Vec<_> = artifacts.iter().map(|m| m.digest().to_string()).collect();
    want.sort();
    assert_eq!(digests, want);
    let sboms = r
        .referrers(image.digest(), Some("application/vnd.example.sbom"))
        .unwrap();
    assert_eq!(sboms.len(), 1);
    assert_eq!(sboms[0].digest(), artifacts[0].digest());
    assert_eq!(
        sboms[0].annotations().as_ref().unwrap()["org.example.n"],
        "0"
    );
    // docker-registry 2.8 has no referrers API: the client kept the fallback tag. Our server
    // answers `OCI-Subject` and the API, so no fallback tag is written.
    let tag_name = Repository::referrers_tag(image.digest());
    assert_eq!(r.tags(None).unwrap().contains(&tag_name.to_string()), !ours);
    // Pulling an artifact gives identical bytes.
    let got = r
        .get_manifest(&TagOrDigest::Digest(artifacts[1].digest().clone()))
        .unwrap();
    assert_eq!(got.raw(), artifacts[1].raw());
    // No referrers: an empty list, not an error.
    assert!(r.referrers(artifacts[0].digest(), None).unwrap().is_empty());
}

fn tags_are_paged(addr: &str, _ours: bool) {
    let r = repo(addr, "tags");
    let m = push_image(&r, "amd64", 5, &[10]);
    let mut want: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
    for t in &want {
        r.put_manifest(&any(&m), Some(&tag(t))).unwrap();
    }
    want.sort();
    // docker-registry 2.8 ignores `n` for tags (it pages only the catalog) and sends them
    // unsorted; a registry that pages is followed through `Link`, as the catalog below is.
    let mut paged = r.tags(Some(2)).unwrap();
    paged.sort();
    assert_eq!(paged, want);
    let mut unpaged = r.tags(None).unwrap();
    unpaged.sort();
    assert_eq!(unpaged, want);
    // The catalog is paged by docker-registry 2.8: pages of 2, more than 2 repositories.
    let mut names = vec![r.name().to_owned()];
    for i in 0..3 {
        let sibling = r.sibling(&format!("{}-{i}", r.name())).unwrap();
        push_image(&sibling, "amd64", 5, &[10]);
        sibling.put_manifest(&any(&m), Some(&tag("x"))).unwrap();
        names.push(sibling.name().to_owned());
    }
    let catalog = r.client().catalog(r.registry(), Some(2)).unwrap();
    for n in &names {
        assert!(catalog.contains(n), "{n} not in {catalog:?}");
    }
    let mut sorted = catalog.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), catalog.len(), "no repository twice");
}

fn delete_manifest_and_blob(addr: &str, _ours: bool) {
    let r = repo(addr, "delete");
    let m = push_image(&r, "amd64", 6, &[50]);
    r.put_manifest(&any(&m), Some(&tag("gone"))).unwrap();
    r.delete_manifest(m.digest()).unwrap();
    let e = r
        .get_manifest(&TagOrDigest::Digest(m.digest().clone()))
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let layer = &m.layers()[0];
    r.delete_blob(layer.digest()).unwrap();
    assert_eq!(r.blob_exists(layer.digest()).unwrap(), None);
    assert!(r.delete_blob(layer.digest()).unwrap_err().is_not_found());
}

fn mount_across_repositories_and_decline(addr: &str, _ours: bool) {
    let from = repo(addr, "mount-from");
    let m = push_image(&from, "amd64", 8, &[2000]);
    let to = from.sibling(&unique("mount-to")).unwrap();
    let layer = &m.layers()[0];
    assert!(to.mount_blob(layer, from.name()).unwrap());
    assert_eq!(to.blob_exists(layer.digest()).unwrap(), Some(2000));
    // A blob the source repository does not have: declined, then uploaded by copy.
    let other = random_descriptor(99, 3000, MediaType::ImageLayerGzip);
    assert!(!ImageDestination::mount_blob(&to, &other, from.name()).unwrap());
    to.push_blob(&other, &mut RandomReader::new(99, 3000))
        .unwrap();
    // The one-call form: mount when it can, upload when the registry declines or the source
    // is on another registry, nothing when the blob is there.
    let fourth = from.sibling(&unique("mount-helper")).unwrap();
    assert_eq!(
        fourth.copy_blob_from_repository(&from, layer).unwrap(),
        BlobCopy::Mounted
    );
    assert_eq!(
        fourth.copy_blob_from_repository(&from, layer).unwrap(),
        BlobCopy::Skipped
    );
    let other_registry = support::Registry::start("", |_| {});
    let elsewhere = client()
        .repository_at(&other_registry.addr, fourth.name())
        .unwrap();
    assert_eq!(
        elsewhere.copy_blob_from_repository(&from, layer).unwrap(),
        BlobCopy::Uploaded
    );
    assert_eq!(elsewhere.blob_exists(layer.digest()).unwrap(), Some(2000));
    // Registry to registry through the traits.
    let third = from.sibling(&unique("mount-copy")).unwrap();
    assert!(third.copy_blob_from(&from, layer).unwrap());
    assert!(!third.copy_blob_from(&from, layer).unwrap());
}

fn single_post_upload_falls_back_to_put(addr: &str, _ours: bool) {
    let c = ocikit_distribution::Client::builder()
        .single_post_upload(true)
        .auth_files(Vec::new())
        .build()
        .unwrap();
    let r = c.repository_at(addr, &unique("single-post")).unwrap();
    let bytes = b"{\"config\":\"in one request where supported\"}";
    let d = Descriptor::new(MediaType::ImageConfig, bytes.len() as u64, sha256(bytes));
    assert!(r.push_blob_bytes(&d, bytes).unwrap());
    assert_eq!(r.blob_exists(d.digest()).unwrap(), Some(bytes.len() as u64));
    assert!(!r.push_blob_bytes(&d, bytes).unwrap());
    // Wrong bytes are refused before anything is sent.
    let other = Descriptor::new(MediaType::ImageConfig, 3, sha256(b"abc"));
    let e = r.push_blob_bytes(&other, b"abd").unwrap_err();
    assert!(
        matches!(e, Error::Image(ref i) if i.is_verification()),
        "{e:?}"
    );
    assert_eq!(r.blob_exists(other.digest()).unwrap(), None);
}

fn chunked_upload_and_reference_parsing(addr: &str, _ours: bool) {
    let c = ocikit_distribution::Client::builder()
        .chunk_size(64 << 10)
        .auth_files(Vec::new())
        .build()
        .unwrap();
    let reference: Reference = format!("{addr}/{}:chunked", unique("chunked"))
        .parse()
        .unwrap();
    let r = c.repository(&reference);
    let len = 64 * 1024 * 5 + 123;
    let d = random_descriptor(11, len, MediaType::ImageLayerGzip);
    assert!(r.push_blob(&d, &mut RandomReader::new(11, len)).unwrap());
    let mut got = r.get_blob(&d).unwrap();
    assert_eq!(std::io::copy(&mut got, &mut std::io::sink()).unwrap(), len);
    // A source with the wrong bytes is refused, and nothing becomes visible.
    let bad = random_descriptor(12, len, MediaType::ImageLayerGzip);
    let e = r
        .push_blob(&bad, &mut RandomReader::new(13, len))
        .unwrap_err();
    assert!(
        matches!(e, Error::Image(ref i) if i.is_verification()),
        "{e:?}"
    );
    assert_eq!(r.blob_exists(bad.digest()).unwrap(), None);
    // The same for a small (monolithic) upload.
    let small = random_descriptor(14, 1000, MediaType::ImageLayerGzip);
    let e = r
        .push_blob(&small, &mut RandomReader::new(15, 1000))
        .unwrap_err();
    assert!(
        matches!(e, Error::Image(ref i) if i.is_verification()),
        "our side refuses before the registry gets the last byte: {e:?}"
    );
    assert_eq!(r.blob_exists(small.digest()).unwrap(), None);
}

/// Each test, against docker-registry and against our server.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod docker_registry {
            $(#[test]
            fn $name() {
                super::$name(&crate::common::registry_addr(), false);
            })*
        }
        mod ocikit_server {
            $(#[test]
            fn $name() {
                let server = crate::support::Served::start();
                super::$name(&server.addr, true);
            })*
        }
    };
}

on_both!(
    ping_and_typed_errors,
    push_then_pull_an_image,
    push_then_pull_an_index_of_two_platforms,
    artifact_with_subject_is_found_through_the_referrers_tag,
    tags_are_paged,
    delete_manifest_and_blob,
    mount_across_repositories_and_decline,
    single_post_upload_falls_back_to_put,
    chunked_upload_and_reference_parsing,
);
