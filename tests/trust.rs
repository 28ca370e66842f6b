//! Signatures and the policy, against real peers: gpg makes the OpenPGP keys, skopeo 1.9
//! signs (`--sign-by`) and verifies (`--policy`) simple signatures with them, and a cosign
//! implementation of a different make (tests/fixtures/cosign_helper.py, Python's
//! `cryptography` and PyNaCl) makes cosign keys and signatures and checks ocikit's.
//!
//! Needs the test registry (`bash scripts/test.sh`), gpg, skopeo, python3-cryptography and
//! python3-nacl (scripts/test.sh installs them); fails without them.

use std::path::{Path, PathBuf};
use std::process::Command;

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{CopyOptions, Location, copy, open_source};
use ocikit::image::host_platform;
use ocikit::layout::Layout;
use ocikit::store::{PullOptions, Store};
use ocikit::trust::{
    CosignPrivateKey, DockerIdentity, Policy, Rejection, SignatureFailure, SimpleSigner,
    TrustError, TrustOptions, check_opened,
};

mod common;
use common::{GpgKey, example_binary, registry, run};

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// An image of one small layer (its content differs with `seed`), in `dir/layout` as `t`.
fn small_image(dir: &Path, seed: &str) -> String {
    let tree = dir.join(format!("tree-{seed}"));
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/seed"), seed).unwrap();
    let layout = Layout::create(dir.join(format!("layout-{seed}"))).unwrap();
    let spec = BuildSpec::new()
        .layer(&tree)
        .created("2024-01-01T00:00:00Z")
        .cmd(vec!["/bin/sh".into()]);
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    format!("oci:{}:t", dir.join(format!("layout-{seed}")).display())
}

fn accept_all() -> TrustOptions {
    TrustOptions::new().policy(
        Policy::from_slice(br#"{"default":[{"type":"insecureAcceptAnything"}]}"#, None).unwrap(),
    )
}

/// Pushes `src` to `docker://REGISTRY/repo:v1` (no policy in the way); returns the location
/// text and the manifest digest.
fn push(src: &str, repo: &str) -> (String, String) {
    let dst = format!("docker://{}/{repo}:v1", registry());
    let report = copy(
        &src.parse().unwrap(),
        &dst.parse().unwrap(),
        &CopyOptions::new().trust(accept_all()),
    )
    .unwrap();
    (dst, report.top.digest().to_string())
}

/// A registries.d directory whose lookaside (read and write) for the test registry is
/// `dir/sigstore`.
fn registries_d(dir: &Path) -> PathBuf {
    let d = dir.join("registries.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("test.yaml"),
        format!(
            "docker:\n  {}:\n    lookaside: file://{}\n",
            registry(),
            dir.join("sigstore").display()
        ),
    )
    .unwrap();
    d
}

/// A policy: `reject` by default; for the test registry's `trust` namespace, `requirement`.
fn policy_file(dir: &Path, name: &str, requirement: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            r#"{{"default": [{{"type": "reject"}}],
  "transports": {{"docker": {{"{}/trust": [{requirement}]}}}}}}"#,
            registry()
        ),
    )
    .unwrap();
    p
}

fn signed_by(key: &Path) -> String {
    format!(
        r#"{{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "{}"}}"#,
        key.display()
    )
}

fn check(image: &str, trust: &TrustOptions) -> Result<(), ocikit::Error> {
    let location: Location = image.parse().unwrap();
    let source = open_source(&location, &host_platform())?;
    check_opened(&location, &source, trust).map(|_| ())
}

fn rejection(r: Result<(), ocikit::Error>) -> Rejection {
    match r {
        Err(ocikit::Error::Trust(TrustError::Rejected { image, reason, .. })) => {
            assert!(
                image.contains("/trust/"),
                "the error names the image: {image}"
            );
            reason
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--debug");
    c
}

#[test]
fn skopeo_signs_and_ocikit_verifies_then_ocikit_signs_and_skopeo_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let key = GpgKey::new("signer");
    let other = GpgKey::new("other");
    let regd = registries_d(tmp.path());
    let src = small_image(tmp.path(), "skopeo");

    // skopeo signs while pushing, the signature going to the lookaside directory.
    let repo = unique("trust/skopeo-signed");
    let image = format!("docker://{}/{repo}:v1", registry());
    run(skopeo()
        .env("GNUPGHOME", key.home.path())
        .args(["--insecure-policy", "--registries.d"])
        .arg(&regd)
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--sign-by",
            &key.fingerprint,
            &src,
            &image,
        ]));
    let written: Vec<_> = walk(&tmp.path().join("sigstore"));
    assert_eq!(written.len(), 1, "skopeo wrote one signature: {written:?}");
    // Where: the repository path without the registry host, `@sha256=HEX/signature-1`.
    let rel = written[0]
        .strip_prefix(tmp.path().join("sigstore"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        rel.starts_with(&format!("{repo}@sha256=")) && rel.ends_with("/signature-1"),
        "{rel}"
    );

    let good = policy_file(tmp.path(), "good.json", &signed_by(&key.public));
    let trust = TrustOptions::new().policy_path(&good).registries_d(&regd);
    check(&image, &trust).expect("ocikit accepts skopeo's signature");
    // The same storage served over HTTP (python3's http.server) is read through ureq.
    let mut server = Command::new("/usr/bin/python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(tmp.path().join("sigstore"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line
        .split(" port ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect(&line)
        .to_owned();
    let http_regd = tmp.path().join("http.d");
    std::fs::create_dir_all(&http_regd).unwrap();
    std::fs::write(
        http_regd.join("h.yaml"),
        format!(
            "docker:\n  {}:\n    lookaside: http://127.0.0.1:{port}\n",
            registry()
        ),
    )
    .unwrap();
    let over_http = check(
        &image,
        &TrustOptions::new()
            .policy_path(&good)
            .registries_d(&http_regd),
    );
    let unknown = check(
        &format!("docker://{}/{}:v1", registry(), unique("trust/nowhere")),
        &TrustOptions::new()
            .policy_path(&good)
            .registries_d(&http_regd),
    );
    let _ = server.kill();
    let _ = server.wait();
    over_http.expect("the signature read over HTTP is accepted");
    // (An image that is not in the registry fails before any signature is looked for.)
    assert!(unknown.is_err());
    // And a copy under that policy goes through.
    let out = tmp.path().join("pulled");
    copy(
        &image.parse().unwrap(),
        &format!("oci:{}:v1", out.display()).parse().unwrap(),
        &CopyOptions::new().trust(trust.clone()),
    )
    .unwrap();

    // Another key: refused, and the copy writes nothing.
    let bad = policy_file(tmp.path(), "bad.json", &signed_by(&other.public));
    let trust_bad = TrustOptions::new().policy_path(&bad).registries_d(&regd);
    let r = rejection(check(&image, &trust_bad));
    assert!(
        matches!(&r, Rejection::NoAcceptedSignature(f) if matches!(f[..], [SignatureFailure::UnknownKey(_)])),
        "{r:?}"
    );
    let refused = tmp.path().join("refused");
    let e = copy(
        &image.parse().unwrap(),
        &format!("oci:{}:v1", refused.display()).parse().unwrap(),
        &CopyOptions::new().trust(trust_bad),
    )
    .unwrap_err();
    assert!(e.to_string().contains(&repo), "{e}");
    assert!(!refused.exists(), "a refused copy creates nothing");

    // ocikit signs (the exported secret key), skopeo verifies under a signedBy policy.
    let repo2 = unique("trust/ocikit-signed");
    let image2 = format!("docker://{}/{repo2}:v1", registry());
    let signer =
        SimpleSigner::from_armored_or_binary(&std::fs::read(&key.secret).unwrap(), "").unwrap();
    assert_eq!(signer.fingerprint().to_uppercase(), key.fingerprint);
    let report = copy(
        &src.parse().unwrap(),
        &image2.parse().unwrap(),
        &CopyOptions::new().trust(accept_all().registries_d(&regd).sign_by(signer.clone())),
    )
    .unwrap();
    let digest = report.top.digest().clone();
    let skopeo_copy = |policy: &Path, dest: &Path| {
        skopeo()
            .args(["--policy"])
            .arg(policy)
            .arg("--registries.d")
            .arg(&regd)
            .args(["copy", "--src-tls-verify=false", &image2])
            .arg(format!("dir:{}", dest.display()))
            .output()
            .unwrap()
    };
    let out = skopeo_copy(&good, &tmp.path().join("skopeo-good"));
    assert!(
        out.status.success(),
        "skopeo accepts ocikit's signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = skopeo_copy(&bad, &tmp.path().join("skopeo-bad"));
    assert!(!out.status.success(), "skopeo refuses it under another key");

    // The signature file replaced by a valid one over another digest: skopeo refuses it,
    // and so does ocikit, saying why.
    let sig_path = walk(&tmp.path().join("sigstore"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains(digest.digest()))
        .expect("ocikit's signature in the lookaside");
    let identity = DockerIdentity::parse(image2.trim_start_matches("docker://")).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        elsewhere.join("e.yaml"),
        format!(
            "default-docker:\n  lookaside: file://{}\n",
            elsewhere.join("s").display()
        ),
    )
    .unwrap();
    let other_digest = ocikit::image::sha256(b"another manifest");
    ocikit::trust::sign_simple(
        &TrustOptions::new().registries_d(&elsewhere),
        &signer,
        &identity,
        &other_digest,
    )
    .unwrap();
    let forged = walk(&elsewhere.join("s")).pop().unwrap();
    std::fs::copy(&forged, &sig_path).unwrap();
    let out = skopeo_copy(&good, &tmp.path().join("skopeo-forged"));
    assert!(
        !out.status.success(),
        "skopeo refuses a signature of another digest"
    );
    let r = rejection(check(&image2, &trust));
    assert!(
        matches!(&r, Rejection::NoAcceptedSignature(f) if matches!(f[..], [SignatureFailure::DigestMismatch { .. }])),
        "{r:?}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn helper() -> Command {
    let mut c = Command::new("/usr/bin/python3");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cosign_helper.py"))
        .env("COSIGN_PASSWORD", "secret");
    c
}

fn sigstore_policy(dir: &Path, name: &str, public: &Path, identity: Option<&str>) -> PathBuf {
    let identity = identity
        .map(|i| format!(r#", "signedIdentity": {{"type": "{i}"}}"#))
        .unwrap_or_default();
    policy_file(
        dir,
        name,
        &format!(
            r#"{{"type": "sigstoreSigned", "keyPath": "{}"{identity}}}"#,
            public.display()
        ),
    )
}

#[test]
fn cosign_signatures_both_ways_with_an_independent_implementation() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("helper");
    run(helper().arg("generate-key").arg(&prefix));
    let public = prefix.with_extension("pub");

    // The helper signs the cosign way (identity: the repository only); ocikit verifies.
    let repo = unique("trust/cosign-by-helper");
    let (image, digest) = push(&small_image(tmp.path(), "c1"), &repo);
    let reference = format!("{}/{repo}", registry());
    run(helper()
        .arg("sign")
        .arg(prefix.with_extension("key"))
        .args([&registry(), &repo, &digest, &reference]));
    let by_repo = sigstore_policy(tmp.path(), "repo.json", &public, Some("matchRepository"));
    check(&image, &TrustOptions::new().policy_path(&by_repo))
        .expect("ocikit verifies the helper's signature");
    // The default identity rule wants the tag cosign does not write.
    let exact = sigstore_policy(tmp.path(), "exact.json", &public, None);
    let r = rejection(check(&image, &TrustOptions::new().policy_path(&exact)));
    assert!(
        matches!(&r, Rejection::NoAcceptedSignature(f) if matches!(f[..], [SignatureFailure::IdentityMismatch { .. }])),
        "{r:?}"
    );
    // A key of ocikit's making is not the helper's.
    let ours = CosignPrivateKey::generate().unwrap();
    std::fs::write(tmp.path().join("ours.pub"), ours.public_key().to_pem()).unwrap();
    let wrong = sigstore_policy(
        tmp.path(),
        "wrong.json",
        &tmp.path().join("ours.pub"),
        Some("matchRepository"),
    );
    let r = rejection(check(&image, &TrustOptions::new().policy_path(&wrong)));
    assert!(
        matches!(&r, Rejection::NoAcceptedSignature(f) if matches!(f[..], [SignatureFailure::UnknownKey(_)])),
        "{r:?}"
    );

    // ocikit signs with the helper's encrypted key (decrypted by ocikit); the helper verifies.
    let helper_key = CosignPrivateKey::from_encrypted_pem(
        &std::fs::read(prefix.with_extension("key")).unwrap(),
        b"secret",
    )
    .unwrap();
    let repo2 = unique("trust/cosign-by-ocikit");
    let image2 = format!("docker://{}/{repo2}:v1", registry());
    let report = copy(
        &small_image(tmp.path(), "c2").parse().unwrap(),
        &image2.parse().unwrap(),
        &CopyOptions::new().trust(accept_all().sign_by_sigstore(helper_key)),
    )
    .unwrap();
    let digest2 = report.top.digest().to_string();
    let verified = run(helper()
        .arg("verify")
        .arg(&public)
        .args([&registry(), &repo2, &digest2]));
    assert_eq!(verified.trim(), image2.trim_start_matches("docker://"));
    check(&image2, &TrustOptions::new().policy_path(&exact))
        .expect("ocikit verifies its own signature");

    // A signature stored as an OCI 1.1 referrer (no `.sig` tag) is found too.
    let repo3 = unique("trust/cosign-referrer");
    let (image3, digest3) = push(&small_image(tmp.path(), "c3"), &repo3);
    let location: Location = image3.parse().unwrap();
    let opened = open_source(&location, &host_platform()).unwrap();
    let subject = opened.top().clone();
    let payload = ocikit::trust::Payload::new(
        ocikit::trust::payload::COSIGN_TYPE,
        subject.digest(),
        image3.trim_start_matches("docker://"),
    )
    .to_json();
    let signature = ours.sign(&payload);
    let dest = ocikit::copy::open_destination(&location).unwrap();
    let layer = serde_json::json!({
        "mediaType": ocikit::trust::cosign::SIMPLE_SIGNING_MEDIA_TYPE,
        "digest": ocikit::image::sha256(&payload).to_string(),
        "size": payload.len(),
        "annotations": {
            ocikit::trust::cosign::SIGNATURE_ANNOTATION: base64_encode(&signature)
        }
    });
    let (empty, empty_bytes) = ocikit::artifact::empty_config();
    let d: ocikit::oci_spec::image::Descriptor = serde_json::from_value(layer.clone()).unwrap();
    dest.destination()
        .put_blob(&d, &mut payload.as_slice())
        .unwrap();
    dest.destination()
        .put_blob(&empty, &mut &empty_bytes[..])
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": ocikit::trust::cosign::SIGNATURE_ARTIFACT_TYPE,
        "config": empty,
        "layers": [layer],
        "subject": subject,
    });
    let doc = ocikit::image::AnyManifest::from_bytes(serde_json::to_vec(&manifest).unwrap(), None)
        .unwrap();
    dest.destination().put_manifest(&doc).unwrap();
    let ours_policy = sigstore_policy(tmp.path(), "ours.json", &tmp.path().join("ours.pub"), None);
    check(&image3, &TrustOptions::new().policy_path(&ours_policy))
        .expect("the referrer's signature is found");
    assert!(digest3.starts_with("sha256:"));

    // A key ocikit generates and encrypts is read by the helper.
    let key_file = tmp.path().join("ocikit.key");
    std::fs::write(&key_file, ours.to_encrypted_pem(b"secret").unwrap()).unwrap();
    let their_view = run(helper().arg("public-key").arg(&key_file));
    assert_eq!(their_view.trim(), ours.public_key().to_pem().trim());
}

#[test]
fn rejections_are_typed_name_the_image_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let key = GpgKey::new("rejections");
    let regd = registries_d(tmp.path());
    let signer =
        SimpleSigner::from_armored_or_binary(&std::fs::read(&key.secret).unwrap(), "").unwrap();
    let good = policy_file(tmp.path(), "good.json", &signed_by(&key.public));
    let trust = TrustOptions::new().policy_path(&good).registries_d(&regd);
    let store = Store::open(tmp.path().join("store")).unwrap();

    let attempt = |image: &str| -> Result<(), ocikit::Error> {
        let check_result = check(image, &trust);
        // The same image copied and pulled into the store under the same policy: refused
        // alike, and nothing is written.
        let dest = tmp.path().join("dest");
        let copied = copy(
            &image.parse().unwrap(),
            &format!("oci:{}:v1", dest.display()).parse().unwrap(),
            &CopyOptions::new().trust(trust.clone()),
        );
        let pulled = store.pull(
            &image.parse().unwrap(),
            &PullOptions::new().trust(trust.clone()),
        );
        assert_eq!(check_result.is_ok(), copied.is_ok(), "{copied:?}");
        assert_eq!(check_result.is_ok(), pulled.is_ok(), "{pulled:?}");
        if check_result.is_err() {
            assert!(!dest.exists(), "a refused copy writes nothing");
            assert!(
                store.images().unwrap().is_empty(),
                "a refused pull stores no image"
            );
            let blobs = walk(&tmp.path().join("store/layout/blobs"));
            assert!(blobs.is_empty(), "a refused pull stores no blob: {blobs:?}");
        }
        check_result
    };
    let image_of = |seed: &str| {
        push(
            &small_image(tmp.path(), seed),
            &unique(&format!("trust/{seed}")),
        )
    };

    // No signature.
    let (unsigned, _) = image_of("unsigned");
    assert_eq!(
        rejection(attempt(&unsigned)),
        Rejection::NoSignature {
            kind: "simple signing"
        }
    );

    // A valid signature over another digest.
    let (img, _) = image_of("otherdigest");
    let id = DockerIdentity::parse(img.trim_start_matches("docker://")).unwrap();
    let sign_as = |identity: &DockerIdentity, digest: &ocikit::oci_spec::image::Digest| {
        ocikit::trust::sign_simple(
            &TrustOptions::new().registries_d(&regd),
            &signer,
            identity,
            digest,
        )
        .unwrap()
    };
    let real = open_source(&img.parse().unwrap(), &host_platform())
        .unwrap()
        .top()
        .digest()
        .clone();
    // Written at the real digest's place: another digest signed, the file moved there.
    let url = sign_as(&id, &ocikit::image::sha256(b"not this image"));
    let placed = url.replace(
        ocikit::image::sha256(b"not this image").digest(),
        real.digest(),
    );
    std::fs::create_dir_all(
        Path::new(placed.trim_start_matches("file://"))
            .parent()
            .unwrap(),
    )
    .unwrap();
    std::fs::rename(
        url.trim_start_matches("file://"),
        placed.trim_start_matches("file://"),
    )
    .unwrap();
    let r = rejection(attempt(&img));
    assert!(
        matches!(&r, Rejection::NoAcceptedSignature(f) if matches!(f[..], [SignatureFailure::DigestMismatch { .. }])),
        "{r:?}"
    );

    // An identity that matchRepoDigestOrExact does not accept (another tag).
    let (img, _) = image_of("identity");
    let real = open_source(&img.parse().unwrap(), &host_platform())
        .unwrap()
        .top()
        .digest()
        .clone();
    let v2 =
        DockerIdentity::parse(&img.trim_start_matches("docker://").replace(":v1", ":v2")).unwrap();
    sign_as(&v2, &real);
    let r = rejection(attempt(&img));
    assert!(
        matches!(&r, Rejection::NoAcceptedSignature(f) if matches!(f[..], [SignatureFailure::IdentityMismatch { .. }])),
        "{r:?}"
    );
    assert!(r.to_string().contains(":v2"), "{r}");

    // A malformed signature.
    let (img, _) = image_of("malformed");
    let real = open_source(&img.parse().unwrap(), &host_platform())
        .unwrap()
        .top()
        .digest()
        .clone();
    let id = DockerIdentity::parse(img.trim_start_matches("docker://")).unwrap();
    let url = sign_as(&id, &real);
    std::fs::write(
        url.trim_start_matches("file://"),
        b"\x89not an OpenPGP message",
    )
    .unwrap();
    let r = rejection(attempt(&img));
    assert!(
        matches!(&r, Rejection::NoAcceptedSignature(f) if matches!(f[..], [SignatureFailure::Invalid(_)])),
        "{r:?}"
    );

    // Signed properly: accepted by all three (and then stored).
    let (img, _) = image_of("good");
    let real = open_source(&img.parse().unwrap(), &host_platform())
        .unwrap()
        .top()
        .digest()
        .clone();
    sign_as(
        &DockerIdentity::parse(img.trim_start_matches("docker://")).unwrap(),
        &real,
    );
    attempt(&img).expect("a good signature is accepted");
    assert_eq!(store.images().unwrap().len(), 1);

    // A policy that says reject, for an image outside the signed namespace.
    let dest = tmp.path().join("rejected");
    let outside = format!("docker://{}/{}:v1", registry(), unique("elsewhere/app"));
    copy(
        &small_image(tmp.path(), "outside").parse().unwrap(),
        &outside.parse().unwrap(),
        &CopyOptions::new().trust(accept_all()),
    )
    .unwrap();
    let e = copy(
        &outside.parse().unwrap(),
        &format!("oci:{}:v1", dest.display()).parse().unwrap(),
        &CopyOptions::new().trust(trust.clone()),
    )
    .unwrap_err();
    match e {
        ocikit::Error::Trust(TrustError::Rejected {
            image,
            reason: Rejection::PolicyRejects,
            ..
        }) => {
            assert!(image.contains("elsewhere/app"), "{image}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!dest.exists());

    // A policy file that does not parse: line and column.
    let broken = tmp.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\"default\": [\n  {\"type\": \"reject\", \"extra\": true}\n]}",
    )
    .unwrap();
    match check(&outside, &TrustOptions::new().policy_path(&broken)) {
        Err(ocikit::Error::Trust(TrustError::Policy {
            line: 2,
            column,
            path: Some(p),
            ..
        })) => {
            assert!(column > 1);
            assert_eq!(p, broken);
        }
        other => panic!("{other:?}"),
    }

    // What ocikit does not implement is an error, never an accept.
    let fulcio = policy_file(
        tmp.path(),
        "fulcio.json",
        r#"{"type": "sigstoreSigned", "fulcio": {"caPath": "/x", "oidcIssuer": "https://i", "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/r"}"#,
    );
    match check(&unsigned, &TrustOptions::new().policy_path(&fulcio)) {
        Err(ocikit::Error::Trust(TrustError::Unsupported { requirement, .. })) => {
            assert!(requirement.contains("fulcio"), "{requirement}")
        }
        other => panic!("{other:?}"),
    }
}

/// The `ocikit` command's trust: `sign`, `verify`, `generate-key`, and `copy`/`run`
/// with `--policy`.
#[test]
fn trust_through_the_ocikit_command() {
    let tmp = tempfile::tempdir().unwrap();
    let ocikit = || Command::new(common::workspace_binary("ocikit"));
    let regd = registries_d(tmp.path());
    let key = GpgKey::ed25519("recipes");
    let (image, _) = push(
        &small_image(tmp.path(), "recipes"),
        &unique("trust/recipes"),
    );

    // sign with the exported key, verify under a signedBy policy.
    let out = run(ocikit()
        .args(["sign", "--sign-by"])
        .arg(&key.secret)
        .arg("--registries.d")
        .arg(&regd)
        .arg(&image));
    assert!(out.starts_with("file://"), "the signature's place: {out}");
    let good = policy_file(tmp.path(), "good.json", &signed_by(&key.public));
    let out = run(ocikit()
        .args(["verify", "--policy"])
        .arg(&good)
        .arg("--registries.d")
        .arg(&regd)
        .arg(&image));
    assert!(out.contains("Accepted"), "{out}");
    // An ed25519 signature made by rPGP, verified by skopeo (gpgme) ...
    let out = skopeo()
        .arg("--policy")
        .arg(&good)
        .arg("--registries.d")
        .arg(&regd)
        .args(["copy", "--src-tls-verify=false", &image])
        .arg(format!("dir:{}", tmp.path().join("by-skopeo").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and one made by skopeo, verified by the command.
    let (second, _) = push(
        &small_image(tmp.path(), "recipes2"),
        &unique("trust/recipes2"),
    );
    run(skopeo()
        .env("GNUPGHOME", key.home.path())
        .args(["--insecure-policy", "--registries.d"])
        .arg(&regd)
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--sign-by",
            &key.fingerprint,
            &second,
            &second,
        ]));
    let out = run(ocikit()
        .args(["verify", "--policy"])
        .arg(&good)
        .arg("--registries.d")
        .arg(&regd)
        .arg(&second));
    assert!(out.contains("signed as"), "{out}");

    // cosign: generate-key, sign, verify.
    let prefix = tmp.path().join("cosign");
    run(ocikit()
        .env("OCIKIT_PASSWORD", "pw")
        .args(["generate-key", "--output-key-prefix"])
        .arg(&prefix));
    run(ocikit()
        .env("OCIKIT_PASSWORD", "pw")
        .args(["sign", "--sign-by-sigstore-private-key"])
        .arg(prefix.with_extension("key"))
        .arg(&image));
    let cosign_policy = sigstore_policy(
        tmp.path(),
        "cosign.json",
        &prefix.with_extension("pub"),
        None,
    );
    run(ocikit()
        .args(["verify", "--policy"])
        .arg(&cosign_policy)
        .arg(&image));

    // copy: --policy with another key refuses (exit 6), and the destination is not created.
    let other = GpgKey::new("recipes-other");
    let bad = policy_file(tmp.path(), "bad.json", &signed_by(&other.public));
    let dest = tmp.path().join("copied");
    let out = ocikit()
        .args(["copy", "--policy"])
        .arg(&bad)
        .arg("--registries.d")
        .arg(&regd)
        .args([&image, &format!("oci:{}:v1", dest.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rejected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dest.exists());
    run(ocikit()
        .args(["copy", "--policy"])
        .arg(&good)
        .arg("--registries.d")
        .arg(&regd)
        .args([&image, &format!("oci:{}:v1", dest.display())]));

    // run: the policy refuses before anything is pulled (exit 125, ocikit's own failure).
    let store = tmp.path().join("store");
    let bare = image.strip_prefix("docker://").unwrap();
    let out = ocikit()
        .args(["run", "--root"])
        .arg(&store)
        .arg("--policy")
        .arg(&bad)
        .arg("--registries.d")
        .arg(&regd)
        .args([bare, "true"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected"));
    let images = run(ocikit().args(["images", "-q", "--root"]).arg(&store));
    assert_eq!(images, "", "a refused image is never stored");
}

/// The trust recipe: a cosign key made, an image signed with it and verified.
#[test]
fn trust_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, _) = push(&small_image(tmp.path(), "recipe"), &unique("trust/recipe"));
    let out = run(Command::new(example_binary("trust"))
        .env("OCIKIT_PASSWORD", "pw")
        .arg(&image)
        .arg(tmp.path().join("key")));
    assert!(out.contains("verified"), "{out}");
    assert!(tmp.path().join("key.pub").exists());
}

#[test]
fn copy_signs_both_ways_carries_signatures_along_and_drops_them_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let key = GpgKey::new("carry");
    let regd = tmp.path().join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("test.yaml"),
        format!(
            "docker:\n  {}:\n    lookaside: file://{}\n    use-sigstore-attachments: true\n",
            registry(),
            tmp.path().join("sigstore").display()
        ),
    )
    .unwrap();
    let signer =
        SimpleSigner::from_armored_or_binary(&std::fs::read(&key.secret).unwrap(), "").unwrap();
    let cosign_key = CosignPrivateKey::generate().unwrap();
    let cosign_pub = tmp.path().join("cosign.pub");
    std::fs::write(&cosign_pub, cosign_key.public_key().to_pem()).unwrap();

    // Signed both ways while pushed.
    let a = format!("docker://{}/{}:v1", registry(), unique("trust/carry-a"));
    copy(
        &small_image(tmp.path(), "carry").parse().unwrap(),
        &a.parse().unwrap(),
        &CopyOptions::new().trust(
            accept_all()
                .registries_d(&regd)
                .sign_by(signer)
                .sign_by_sigstore(cosign_key),
        ),
    )
    .unwrap();
    // Both requirements at once, each on the identity the signatures claim (A's).
    let claimed = a.trim_start_matches("docker://");
    let both = policy_file(
        tmp.path(),
        "both.json",
        &format!(
            r#"{{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "{}",
                "signedIdentity": {{"type": "exactReference", "dockerReference": "{claimed}"}}}},
               {{"type": "sigstoreSigned", "keyPath": "{}",
                "signedIdentity": {{"type": "exactReference", "dockerReference": "{claimed}"}}}}"#,
            key.public.display(),
            cosign_pub.display()
        ),
    );
    let trust = TrustOptions::new().policy_path(&both).registries_d(&regd);
    check(&a, &trust).expect("both signatures of A");

    // Copied to B: both signatures come along.
    let b = format!("docker://{}/{}:v1", registry(), unique("trust/carry-b"));
    copy(
        &a.parse().unwrap(),
        &b.parse().unwrap(),
        &CopyOptions::new().trust(trust.clone()),
    )
    .unwrap();
    check(&b, &trust).expect("B has A's signatures");

    // Copied to C without them: C is refused.
    let c = format!("docker://{}/{}:v1", registry(), unique("trust/carry-c"));
    copy(
        &a.parse().unwrap(),
        &c.parse().unwrap(),
        &CopyOptions::new().trust(trust.clone().remove_signatures(true)),
    )
    .unwrap();
    assert_eq!(
        rejection(check(&c, &trust)),
        Rejection::NoSignature {
            kind: "simple signing"
        }
    );
}
