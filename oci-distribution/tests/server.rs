//! Our registry (`RegistryServer`, feature `server`) at the HTTP level: the distribution-spec
//! v1.1 workflows (pull, push, content discovery, content management, referrers) with the
//! statuses, headers and error codes the spec gives; skopeo against it; basic auth;
//! concurrent clients. The client suite of `tests/registry.rs` runs against it as well.

mod common;
mod support;

use std::process::Command;

use ocikit_distribution::oci_spec::image::{Descriptor, DigestAlgorithm, MediaType};
use ocikit_distribution::ocikit_image::{ImageSource, Manifest, TagOrDigest, sha256};
use ocikit_distribution::{Client, Credentials, Htpasswd};
use support::{Served, any, client, index_of, push_image, run, unique};

struct Resp {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }
    /// The first error code of an error body.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Plain HTTP against one server, every status returned (none is an error).
struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    fn new(addr: &str) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Http {
            agent,
            base: format!("http://{addr}"),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut b = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = match body {
            Some(body) => self.agent.run(b.body(body.to_vec()).unwrap()),
            None => self.agent.run(b.body(()).unwrap()),
        }
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            resp.into_body().read_to_vec().unwrap()
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None)
    }
}

/// Reads from a raw connection up to the end of a response head (reads interrupted by a
/// signal are retried); returns what was read.
fn read_head_raw(conn: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading a response head: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes `bytes` monolithically (`POST ?digest=`); returns the digest.
fn post_blob(h: &Http, name: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes).to_string();
    let r = h.send(
        "POST",
        &format!("/v2/{name}/blobs/uploads/?digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        Some(bytes),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("Location").unwrap(),
        format!("/v2/{name}/blobs/{digest}")
    );
    digest
}

fn manifest_json(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let d = |b: &[u8], t: &str| serde_json::json!({"mediaType": t, "digest": sha256(b).to_string(), "size": b.len()});
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": d(config, "application/vnd.oci.image.config.v1+json"),
        "layers": layers.iter().map(|l| d(l, "application/vnd.oci.image.layer.v1.tar+gzip")).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// A server of our own with the config `{}` pushed to `name`; returns it, a connection to it
/// and an image manifest of that config and no layers (not pushed).
fn served_with_empty_image(name: &str) -> (Served, Http, Vec<u8>) {
    let server = Served::start();
    let h = Http::new(&server.addr);
    let config = b"{}";
    post_blob(&h, name, config);
    let manifest = manifest_json(config, &[]);
    (server, h, manifest)
}

#[test]
fn push_workflows_statuses_and_errors() {
    let server = Served::start();
    let h = Http::new(&server.addr);
    let name = "conformance/push";

    // /v2/ answers 200.
    assert_eq!(h.get("/v2/").status, 200);

    // Monolithic POST with digest.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    post_blob(&h, name, config);

    // POST then PUT.
    let layer1 = vec![7u8; 100_000];
    let r = h.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None);
    assert_eq!(r.status, 202);
    let location = r.header("Location").unwrap().to_owned();
    assert!(r.header("Docker-Upload-UUID").is_some());
    let d1 = sha256(&layer1).to_string();
    let r = h.send(
        "PUT",
        &format!("{location}?digest={d1}"),
        &[("Content-Type", "application/octet-stream")],
        Some(&layer1),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Docker-Content-Digest"), Some(d1.as_str()));

    // Chunked: PATCH with Content-Range in order, 416 out of order, status, final PUT.
    let layer2: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d2 = sha256(&layer2).to_string();
    let r = h.send(
        "POST",
        &format!("/v2/{name}/blobs/uploads/"),
        &[("Content-Length", "0")],
        None,
    );
    let mut location = r.header("Location").unwrap().to_owned();
    let (a, b) = layer2.split_at(100_000);
    let r = h.send(
        "PATCH",
        &location,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", "0-99999"),
        ],
        Some(a),
    );
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range"), Some("0-99999"));
    location = r.header("Location").unwrap().to_owned();
    // The same chunk again, and one that skips ahead: 416.
    for range in ["0-99999", "100001-300000"] {
        let r = h.send(
            "PATCH",
            &location,
            &[("Content-Range", range)],
            Some(&b[..range_len(range)]),
        );
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("Range"), Some("0-99999"));
    }
    let r = h.get(&location);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Range"), Some("0-99999"));
    let (b1, b2) = b.split_at(50_000);
    let r = h.send(
        "PATCH",
        &location,
        &[("Content-Range", "100000-149999")],
        Some(b1),
    );
    assert_eq!(r.status, 202);
    // The last bytes come with the PUT.
    let r = h.send(
        "PUT",
        &format!("{location}?digest={d2}"),
        &[("Content-Range", "150000-299999")],
        Some(b2),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // The session is gone.
    assert_eq!(h.get(&location).status, 404);
    assert_eq!(h.get(&location).code(), "BLOB_UPLOAD_UNKNOWN");

    // Streamed PATCH (no Content-Range), then PUT without a body.
    let layer3 = vec![3u8; 70_000];
    let d3 = sha256(&layer3).to_string();
    let r = h.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None);
    let location = r.header("Location").unwrap().to_owned();
    let r = h.send("PATCH", &location, &[], Some(&layer3));
    assert_eq!((r.status, r.header("Range")), (202, Some("0-69999")));
    let r = h.send("PUT", &format!("{location}?digest={d3}"), &[], None);
    assert_eq!(r.status, 201);

    // A sha512 blob, monolithic.
    let d512 = ocikit_distribution::ocikit_image::digest_bytes(&DigestAlgorithm::Sha512, &layer3)
        .unwrap()
        .to_string();
    let r = h.send(
        "POST",
        &format!("/v2/{name}/blobs/uploads/?digest={d512}"),
        &[],
        Some(&layer3),
    );
    assert_eq!(r.status, 201);
    assert_eq!(h.get(&format!("/v2/{name}/blobs/{d512}")).body, layer3);

    // Wrong digest on PUT: DIGEST_INVALID, nothing stored.
    let r = h.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None);
    let location = r.header("Location").unwrap().to_owned();
    let wrong = sha256(b"something else").to_string();
    let r = h.send(
        "PUT",
        &format!("{location}?digest={wrong}"),
        &[],
        Some(b"these bytes"),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        h.send("HEAD", &format!("/v2/{name}/blobs/{wrong}"), &[], None)
            .status,
        404
    );
    // Wrong digest on a monolithic POST, and on an existing blob.
    let r = h.send(
        "POST",
        &format!("/v2/{name}/blobs/uploads/?digest={d1}"),
        &[],
        Some(b"not layer1"),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));

    // Unknown and cancelled sessions.
    let r = h.send(
        "PATCH",
        &format!("/v2/{name}/blobs/uploads/00112233445566778899aabbccddeeff"),
        &[],
        Some(b"x"),
    );
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    let r = h.send(
        "PATCH",
        &format!("/v2/{name}/blobs/uploads/..%2F..%2Fetc"),
        &[],
        Some(b"x"),
    );
    assert_eq!(r.status, 404);
    let r = h.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None);
    let location = r.header("Location").unwrap().to_owned();
    assert_eq!(h.send("DELETE", &location, &[], None).status, 204);
    assert_eq!(
        h.send(
            "PUT",
            &format!("{location}?digest={d1}"),
            &[],
            Some(&layer1)
        )
        .status,
        404
    );
    // A session belongs to its repository.
    let r = h.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None);
    let id = r.header("Docker-Upload-UUID").unwrap().to_owned();
    assert_eq!(h.get(&format!("/v2/other/blobs/uploads/{id}")).status, 404);

    // Blobs: HEAD with Content-Length, GET, Range, unknown.
    let r = h.send("HEAD", &format!("/v2/{name}/blobs/{d2}"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("300000"));
    assert_eq!(r.header("Docker-Content-Digest"), Some(d2.as_str()));
    let r = h.get(&format!("/v2/{name}/blobs/{d2}"));
    assert_eq!(r.body, layer2);
    let r = h.send(
        "GET",
        &format!("/v2/{name}/blobs/{d2}"),
        &[("Range", "bytes=10-19")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 10-19/300000"));
    assert_eq!(r.body, &layer2[10..20]);
    let r = h.send(
        "GET",
        &format!("/v2/{name}/blobs/{d2}"),
        &[("Range", "bytes=300000-")],
        None,
    );
    assert_eq!(r.status, 416);
    let unknown = sha256(b"never pushed").to_string();
    let r = h.get(&format!("/v2/{name}/blobs/{unknown}"));
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    let r = h.get(&format!("/v2/{name}/blobs/sha256:nothex"));
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));

    // Manifests: PUT by tag, GET/HEAD by tag and digest with the media type and digest.
    let manifest = manifest_json(config, &[&layer1, &layer2, &layer3]);
    let md = sha256(&manifest).to_string();
    let r = h.send(
        "PUT",
        &format!("/v2/{name}/manifests/v1"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("Docker-Content-Digest"), Some(md.as_str()));
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/{name}/manifests/{md}").as_str())
    );
    for reference in ["v1", md.as_str()] {
        let r = h.get(&format!("/v2/{name}/manifests/{reference}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, manifest);
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("Docker-Content-Digest"), Some(md.as_str()));
        let r = h.send(
            "HEAD",
            &format!("/v2/{name}/manifests/{reference}"),
            &[],
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Length"),
            Some(manifest.len().to_string().as_str())
        );
    }
    // By a sha512 digest.
    let d512 = ocikit_distribution::ocikit_image::digest_bytes(&DigestAlgorithm::Sha512, &manifest)
        .unwrap()
        .to_string();
    let r = h.send(
        "PUT",
        &format!("/v2/{name}/manifests/{d512}"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        h.get(&format!("/v2/{name}/manifests/{d512}")).body,
        manifest
    );
    // By a digest that is not the body's.
    let r = h.send(
        "PUT",
        &format!("/v2/{name}/manifests/{unknown}"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // Referencing a missing blob.
    let bad = manifest_json(config, &[b"missing layer"]);
    let r = h.send(
        "PUT",
        &format!("/v2/{name}/manifests/bad"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(&bad),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    // Not a manifest, and too large.
    let r = h.send(
        "PUT",
        &format!("/v2/{name}/manifests/bad"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(b"{\"schemaVersion\":"),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
    let huge = vec![b' '; 5 << 20];
    let r = h.send(
        "PUT",
        &format!("/v2/{name}/manifests/bad"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(&huge),
    );
    assert_eq!(r.status, 413);
    // Unknown manifests; invalid names.
    let r = h.get(&format!("/v2/{name}/manifests/nope"));
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    for bad_name in ["Upper/case", "a//b", "a/../b", "-a", "a/_layout"] {
        let r = h.get(&format!("/v2/{bad_name}/manifests/v1"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "NAME_INVALID"),
            "{bad_name}"
        );
    }
    let r = h.get("/v2/../../etc/tags/list");
    assert!(r.status == 400 || r.status == 404, "{}", r.status);

    // Content management: delete the tag, the manifest, a blob; then GET is 404.
    let r = h.send("DELETE", &format!("/v2/{name}/manifests/v1"), &[], None);
    assert_eq!(r.status, 202);
    assert_eq!(h.get(&format!("/v2/{name}/manifests/v1")).status, 404);
    assert_eq!(
        h.get(&format!("/v2/{name}/manifests/{md}")).status,
        200,
        "untagging keeps the manifest"
    );
    let r = h.send("DELETE", &format!("/v2/{name}/manifests/{md}"), &[], None);
    assert_eq!(r.status, 202);
    let r = h.get(&format!("/v2/{name}/manifests/{md}"));
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    assert_eq!(
        h.send("DELETE", &format!("/v2/{name}/manifests/{md}"), &[], None)
            .status,
        404
    );
    assert_eq!(
        h.send("DELETE", &format!("/v2/{name}/blobs/{d3}"), &[], None)
            .status,
        202
    );
    let r = h.get(&format!("/v2/{name}/blobs/{d3}"));
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));

    // Mounts: from a repository that has the blob; anonymous (no `from`); declined (202).
    let r = h.send(
        "POST",
        &format!("/v2/other/blobs/uploads/?mount={d1}&from={name}"),
        &[],
        None,
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/other/blobs/{d1}").as_str())
    );
    assert_eq!(h.get(&format!("/v2/other/blobs/{d1}")).body, layer1);
    let r = h.send(
        "POST",
        &format!("/v2/third/blobs/uploads/?mount={d2}"),
        &[],
        None,
    );
    assert_eq!(r.status, 201);
    let r = h.send(
        "POST",
        &format!("/v2/third/blobs/uploads/?mount={unknown}&from={name}"),
        &[],
        None,
    );
    assert_eq!(r.status, 202);
    assert!(r.header("Location").unwrap().contains("/blobs/uploads/"));

    // The repository is an OCI layout.
    let layout = ocikit_layout::Layout::open(server.layout_dir(name)).unwrap();
    assert!(layout.has_blob(&layer1_digest(&layer1)).unwrap());
}

fn layer1_digest(b: &[u8]) -> ocikit_distribution::oci_spec::image::Digest {
    sha256(b)
}

fn range_len(range: &str) -> usize {
    let (a, b) = range.split_once('-').unwrap();
    (b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1).min(200_000)
}

#[test]
fn tags_and_catalog_page_at_their_boundaries() {
    let name = "paging/repo";
    let (_server, h, manifest) = served_with_empty_image(name);
    let tags = ["a", "b", "c", "d", "e"];
    for t in tags.iter().rev() {
        let r = h.send(
            "PUT",
            &format!("/v2/{name}/manifests/{t}"),
            &[("Content-Type", OCI_MANIFEST)],
            Some(&manifest),
        );
        assert_eq!(r.status, 201);
    }
    let list = |q: &str| {
        let r = h.get(&format!("/v2/{name}/tags/list{q}"));
        assert_eq!(r.status, 200);
        let tags: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
        (tags, r.header("Link").map(str::to_owned))
    };
    // All, in lexical order.
    assert_eq!(list(""), (tags.map(String::from).to_vec(), None));
    // n smaller than the count: a page and a Link to the next.
    let (page, link) = list("?n=2");
    assert_eq!(page, ["a", "b"]);
    assert_eq!(
        link.as_deref(),
        Some(format!("</v2/{name}/tags/list?n=2&last=b>; rel=\"next\"").as_str())
    );
    let (page, link) = list("?n=2&last=b");
    assert_eq!(page, ["c", "d"]);
    assert!(link.is_some());
    let (page, link) = list("?n=2&last=d");
    assert_eq!((page, link), (vec!["e".to_owned()], None));
    // n equal to the count: everything, no Link.
    assert_eq!(list("?n=5"), (tags.map(String::from).to_vec(), None));
    // n zero: an empty list, no Link; last past the end: empty.
    assert_eq!(list("?n=0"), (Vec::new(), None));
    assert_eq!(list("?last=e"), (Vec::new(), None));
    assert_eq!(
        list("?n=10&last=c"),
        (vec!["d".to_owned(), "e".into()], None)
    );
    // Unknown repository.
    let r = h.get("/v2/no/such/tags/list");
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
    // The catalog pages too.
    post_blob(&h, "paging/other", b"{}");
    let r = h.get("/v2/_catalog?n=1");
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["paging/other"])
    );
    assert_eq!(
        r.header("Link"),
        Some("</v2/_catalog?n=1&last=paging/other>; rel=\"next\"")
    );
    let r = h.get("/v2/_catalog?n=1&last=paging/other");
    assert_eq!(r.json()["repositories"], serde_json::json!(["paging/repo"]));
    assert_eq!(r.header("Link"), None);
}

#[test]
fn referrers_api_with_filters_and_subject_header() {
    let name = "refs/app";
    let (_server, h, image) = served_with_empty_image(name);
    let image_digest = sha256(&image).to_string();
    h.send(
        "PUT",
        &format!("/v2/{name}/manifests/v1"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(&image),
    );
    let empty = serde_json::json!({"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}").to_string(), "size": 2});
    let mut pushed = Vec::new();
    for (i, kind) in [
        Some("application/vnd.example.sbom"),
        Some("application/vnd.example.sig"),
        None,
    ]
    .iter()
    .enumerate()
    {
        let mut m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": if kind.is_some() { empty.clone() } else {
                serde_json::json!({"mediaType": "application/vnd.example.config", "digest": sha256(b"{}").to_string(), "size": 2})
            },
            "layers": [empty],
            "subject": {"mediaType": OCI_MANIFEST, "digest": image_digest, "size": image.len()},
            "annotations": {"n": i.to_string()},
        });
        if let Some(kind) = kind {
            m["artifactType"] = (*kind).into();
        }
        let raw = serde_json::to_vec(&m).unwrap();
        let d = sha256(&raw).to_string();
        let r = h.send(
            "PUT",
            &format!("/v2/{name}/manifests/{d}"),
            &[("Content-Type", OCI_MANIFEST)],
            Some(&raw),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("OCI-Subject"), Some(image_digest.as_str()));
        pushed.push(d);
    }
    let r = h.get(&format!("/v2/{name}/referrers/{image_digest}"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(r.header("OCI-Filters-Applied"), None);
    let index = r.json();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let mut got: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = pushed.clone();
    want.sort();
    assert_eq!(got, want);
    // artifactType falls back to the config's media type.
    let third = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["digest"] == pushed[2])
        .unwrap();
    assert_eq!(third["artifactType"], "application/vnd.example.config");
    assert_eq!(third["annotations"]["n"], "2");
    // Filtered.
    let r = h.get(&format!(
        "/v2/{name}/referrers/{image_digest}?artifactType=application/vnd.example.sig"
    ));
    assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
    let index = r.json();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], pushed[1]);
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );
    // No referrers: an empty index, 200; a bad digest: 400.
    let r = h.get(&format!("/v2/{name}/referrers/{}", pushed[0]));
    assert_eq!(
        (r.status, r.json()["manifests"].as_array().unwrap().len()),
        (200, 0)
    );
    assert_eq!(
        h.get(&format!("/v2/{name}/referrers/sha256:zz")).status,
        400
    );
    // Deleting a referrer removes it from the list.
    h.send(
        "DELETE",
        &format!("/v2/{name}/manifests/{}", pushed[0]),
        &[],
        None,
    );
    let r = h.get(&format!("/v2/{name}/referrers/{image_digest}"));
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 2);
}

#[test]
fn skopeo_copies_an_image_and_an_index_in_and_out() {
    let server = Served::start();
    let addr = &server.addr;
    let c = client();
    let src = c.repository_at(addr, "skopeo/src").unwrap();
    // Real gzip layers: skopeo looks inside, and would relabel random bytes as `tar`.
    let amd = push_gzip_image(&src, "amd64", &[21, 22]);
    let arm = push_gzip_image(&src, "arm64", &[23]);
    src.put_manifest(&any(&amd), Some(&"amd".parse().unwrap()))
        .unwrap();
    src.put_manifest(&any(&arm), None).unwrap();
    let index = index_of(&[(&amd, "amd64"), (&arm, "arm64")]);
    src.put_manifest(
        &ocikit_distribution::ocikit_image::AnyManifest::Index(index.clone()),
        Some(&"multi".parse().unwrap()),
    )
    .unwrap();

    let work = tempfile::tempdir().unwrap();
    for (tag, digest, all) in [
        ("amd", amd.digest(), false),
        ("multi", index.digest(), true),
    ] {
        let out = work.path().join(tag);
        let mut copy_out = Command::new("skopeo");
        copy_out.args(["copy", "--src-tls-verify=false"]);
        if all {
            copy_out.arg("--all");
        }
        run(copy_out
            .arg(format!("docker://{addr}/skopeo/src:{tag}"))
            .arg(format!("oci:{}:{tag}", out.display())));
        let mut copy_in = Command::new("skopeo");
        copy_in.args(["copy", "--dest-tls-verify=false"]);
        if all {
            copy_in.arg("--all");
        }
        run(copy_in
            .arg(format!("oci:{}:{tag}", out.display()))
            .arg(format!("docker://{addr}/skopeo/dst:{tag}")));
        for repo in ["src", "dst"] {
            let got = run(Command::new("skopeo")
                .args(["inspect", "--tls-verify=false", "--raw"])
                .arg(format!("docker://{addr}/skopeo/{repo}:{tag}")));
            assert_eq!(sha256(got.as_bytes()), *digest, "{repo}:{tag}: {got}");
        }
        let dst = c.repository_at(addr, "skopeo/dst").unwrap();
        assert_eq!(dst.resolve(&tag.parse().unwrap()).unwrap().digest(), digest);
    }
    let inspect = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--override-arch", "arm64"])
        .arg(format!("docker://{addr}/skopeo/dst:multi")));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    // skopeo reports the digest of what the tag names (the index), and the arm64 config.
    assert_eq!(inspect["Digest"], index.digest().to_string());
    assert_eq!(inspect["Architecture"], "arm64");
    assert_eq!(inspect["Layers"][0], arm.layers()[0].digest().to_string());
    let tags = run(Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{addr}/skopeo/dst")));
    let tags: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["amd", "multi"]));
    // What was served is a valid layout, as the spec checker of ocikit-layout sees it.
    let layout = ocikit_layout::Layout::open(server.layout_dir("skopeo/dst")).unwrap();
    assert!(layout.fsck().unwrap().is_ok());
}

/// Pushes an image whose layers are gzip streams (of random bytes, made by `gzip`).
fn push_gzip_image(repo: &ocikit_distribution::Repository, arch: &str, seeds: &[u64]) -> Manifest {
    use std::io::{Read, Write};
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for &seed in seeds {
        let mut raw = Vec::new();
        support::RandomReader::new(seed, 20_000 + seed)
            .read_to_end(&mut raw)
            .unwrap();
        let mut child = Command::new("gzip")
            .args(["-c", "-n"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&raw).unwrap();
        let gz = child.wait_with_output().unwrap().stdout;
        let d = Descriptor::new(MediaType::ImageLayerGzip, gz.len() as u64, sha256(&gz));
        repo.push_blob_bytes(&d, &gz).unwrap();
        diff_ids.push(sha256(&raw).to_string());
        layers.push(d);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = Descriptor::new(MediaType::ImageConfig, config.len() as u64, sha256(&config));
    repo.push_blob_bytes(&cd, &config).unwrap();
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cd, "layers": layers,
    });
    Manifest::from_bytes(serde_json::to_vec(&m).unwrap()).unwrap()
}

#[test]
fn basic_auth_from_an_htpasswd_file() {
    let hash = bcrypt_hash("s3cret");
    let server =
        Served::start_with(|s| s.htpasswd(Htpasswd::parse(&format!("alice:{hash}\n")).unwrap()));
    let h = Http::new(&server.addr);
    let r = h.get("/v2/");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic "));
    // Our client: refused without credentials, served with them.
    let name = unique("auth");
    let e = client()
        .repository_at(&server.addr, &name)
        .unwrap()
        .tags(None)
        .unwrap_err();
    assert!(e.is_auth(), "{e:?}");
    let authed = Client::builder()
        .auth_files(Vec::new())
        .credentials(server.addr.clone(), Credentials::new("alice", "s3cret"))
        .build()
        .unwrap();
    let repo = authed.repository_at(&server.addr, &name).unwrap();
    let m = push_image(&repo, "amd64", 31, &[1000]);
    repo.put_manifest(&any(&m), Some(&"v1".parse().unwrap()))
        .unwrap();
    assert_eq!(repo.tags(None).unwrap(), ["v1"]);
    let wrong = Client::builder()
        .auth_files(Vec::new())
        .credentials(server.addr.clone(), Credentials::new("alice", "nope"))
        .build()
        .unwrap();
    assert!(
        wrong
            .repository_at(&server.addr, &name)
            .unwrap()
            .tags(None)
            .unwrap_err()
            .is_auth()
    );
    // skopeo with --creds.
    let out = run(Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", "--creds", "alice:s3cret"])
        .arg(format!("docker://{}/{name}", server.addr)));
    assert!(out.contains("v1"), "{out}");
}

/// A bcrypt hash made by `htpasswd -B` (apache2-utils), as a user would.
fn bcrypt_hash(password: &str) -> String {
    let out = run(Command::new("htpasswd").args(["-nbB", "-C", "4", "u", password]));
    out.trim().strip_prefix("u:").unwrap().to_owned()
}

#[test]
fn concurrent_clients_and_sessions() {
    let server = Served::start_with(|s| s.workers(4));
    let addr = server.addr.clone();
    std::thread::scope(|scope| {
        for t in 0..6u64 {
            let addr = addr.clone();
            scope.spawn(move || {
                let c = Client::builder()
                    .auth_files(Vec::new())
                    .chunk_size(64 << 10)
                    .build()
                    .unwrap();
                // Shared repository: concurrent index.json updates lose no tag.
                let repo = c.repository_at(&addr, "concurrent/shared").unwrap();
                let m = push_image(&repo, "amd64", 40 + t, &[200_000 + t, 5000]);
                repo.put_manifest(&any(&m), Some(&format!("t{t}").parse().unwrap()))
                    .unwrap();
                let got = repo
                    .get_manifest(&TagOrDigest::Digest(m.digest().clone()))
                    .unwrap();
                assert_eq!(got.digest(), m.digest());
            });
        }
    });
    let c = client();
    let repo = c.repository_at(&addr, "concurrent/shared").unwrap();
    let mut tags = repo.tags(None).unwrap();
    tags.sort();
    assert_eq!(tags, (0..6).map(|t| format!("t{t}")).collect::<Vec<_>>());
    let layout = ocikit_layout::Layout::open(server.layout_dir("concurrent/shared")).unwrap();
    assert!(layout.fsck().unwrap().is_ok());
}

#[test]
fn idle_sessions_expire() {
    let server = Served::start_with(|s| s.upload_ttl(std::time::Duration::ZERO));
    let h = Http::new(&server.addr);
    let r = h.send("POST", "/v2/ttl/blobs/uploads/", &[], None);
    let first = r.header("Location").unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(10));
    // A new session sweeps the idle one, and its bytes.
    h.send("POST", "/v2/ttl/blobs/uploads/", &[], None);
    assert_eq!(h.get(&first).status, 404);
    let uploads = std::fs::read_dir(server.dir.path().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 1);
}

#[test]
fn docker_schema2_through_our_client() {
    // A Docker manifest keeps its media type; a manifest pushed by digest only is listed.
    let server = Served::start();
    let repo = client().repository_at(&server.addr, "docker/v2s2").unwrap();
    let m = push_image(&repo, "amd64", 50, &[10]);
    let mut v: serde_json::Value = serde_json::from_slice(m.raw()).unwrap();
    v["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
    v["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
    v["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
    let docker = Manifest::from_bytes(serde_json::to_vec(&v).unwrap()).unwrap();
    repo.put_manifest(&any(&docker), None).unwrap();
    let head = repo
        .head_manifest(&TagOrDigest::Digest(docker.digest().clone()))
        .unwrap();
    assert_eq!(
        head.media_type(),
        &MediaType::Other("application/vnd.docker.distribution.manifest.v2+json".into())
    );
    let _: Descriptor = head;
}

#[test]
fn a_tls_hello_is_refused_at_once() {
    // Clients with insecure flags try TLS first and fall back to plain HTTP on an HTTP answer;
    // waiting on the hello instead would cost them their handshake timeout (10 s for Go).
    use std::io::{Read, Write};
    let server = Served::start();
    let mut conn = std::net::TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    conn.write_all(&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1])
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer:?}");
    // Plain HTTP on the next connection is served, and kept alive across requests.
    let mut conn = std::net::TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    for _ in 0..2 {
        conn.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let head = read_head_raw(&mut conn);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
}

#[test]
fn connections_are_capped_and_idle_ones_closed() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let server = Served::start_with(|s| {
        s.max_connections(1)
            .idle_timeout(Duration::from_millis(300))
    });
    let mut first = std::net::TcpStream::connect(&server.addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    first
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head_raw(&mut first);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A second one while the first is open: 503.
    let mut second = std::net::TcpStream::connect(&server.addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    second.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    // The first, left idle, is closed, which frees its place.
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let c = client();
    c.ping(&server.addr).unwrap();
}

#[test]
fn one_server_per_root() {
    let mut first = Served::start();
    let e = ocikit_distribution::RegistryServer::new(first.dir.path())
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(e.to_string().contains("another server"), "{e}");
    // Once the first stops, the root can be served again, with what it stored.
    post_blob(&Http::new(&first.addr), "kept/repo", b"kept");
    first.handle.take().unwrap().stop();
    let again = ocikit_distribution::RegistryServer::new(first.dir.path())
        .bind("127.0.0.1:0")
        .unwrap();
    let h = Http::new(&again.addr().to_string());
    let r = h.get(&format!("/v2/kept/repo/blobs/{}", sha256(b"kept")));
    assert_eq!(r.body, b"kept");
}

// ---- The distribution-spec conformance workflows, replayed ------------------------------
//
// The official suite (distribution-spec `conformance/`, Go) cannot run here, so its checks
// are replayed below in the order it makes them: pull, push, content discovery, content
// management, all on one repository (the suite shares `OCI_NAMESPACE` between workflows,
// so what one workflow leaves behind is what the next one sees), with its setup and
// teardown steps. Each check accepts what the suite accepts; where it accepts several
// answers, the one this server gives is asserted, and the alternatives are noted.

/// A 2xx status, what the suite's setup and teardown steps require.
fn is_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The suite's test content: configs, a layer, manifests, artifacts with a subject.
struct Fixtures {
    /// One config per workflow (a unique author makes each digest unique).
    configs: Vec<Vec<u8>>,
    layer: Vec<u8>,
    /// One image manifest per workflow, each config descriptor carrying `data` and a field
    /// no spec defines (registries must keep both: the digest is of the bytes).
    manifests: Vec<Vec<u8>>,
    /// An image manifest without layers and without `mediaType`.
    empty_layer_manifest: Vec<u8>,
    /// The streamed blob.
    blob_a: Vec<u8>,
    /// The chunked blob, sent in two chunks (the first one byte longer).
    blob_b: Vec<u8>,
    ref_blob_a: Vec<u8>,
    ref_blob_b: Vec<u8>,
    /// Artifacts whose subject is `manifests[4]`: type A as config media type, type A as
    /// `artifactType`, the same two of type B, and an index of the two A ones.
    refs_a_config: Vec<u8>,
    refs_a_layer: Vec<u8>,
    refs_b_config: Vec<u8>,
    refs_b_layer: Vec<u8>,
    refs_index: Vec<u8>,
    /// An artifact whose subject, `manifests[3]`, is not pushed when it is.
    refs_c_layer: Vec<u8>,
    /// A digest nothing has: sha256 of "hello world".
    dummy_digest: String,
}

const ANNOTATION: &str = "org.opencontainers.conformance.test";
const TYPE_A: &str = "application/vnd.example.conformance.a";
const TYPE_B: &str = "application/vnd.example.conformance.b";
const TYPE_INDEX: &str = "application/vnd.example.conformance.index";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";
/// A reference that is neither a tag nor a digest: the suite's "nonexistent manifest".
const NOT_A_REFERENCE: &str = ".INVALID_MANIFEST_NAME";

fn digest_of(bytes: &[u8]) -> String {
    sha256(bytes).to_string()
}

fn descriptor_json(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest_of(bytes), "size": bytes.len()})
}

/// Indented JSON, as the suite sends (so no test depends on compact bytes).
fn pretty(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

fn random_bytes(seed: u64, len: u64) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    support::RandomReader::new(seed, len)
        .read_to_end(&mut out)
        .unwrap();
    out
}

impl Fixtures {
    fn new() -> Fixtures {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let configs: Vec<Vec<u8>> = (0..5)
            .map(|i| {
                pretty(&serde_json::json!({
                    "author": format!("conformance-{i}-{}", unique("author")),
                    "architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []},
                }))
            })
            .collect();
        let layer = random_bytes(1001, 150);
        let manifests: Vec<Vec<u8>> = configs
            .iter()
            .map(|config| {
                let mut cd = descriptor_json("application/vnd.oci.image.config.v1+json", config);
                cd["data"] = b64(config).into();
                cd["newUnspecifiedField"] = b64(b"hello world").into();
                pretty(&serde_json::json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cd,
                    "layers": [descriptor_json("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
                }))
            })
            .collect();
        let empty_layer_manifest = pretty(&serde_json::json!({
            "schemaVersion": 2,
            "config": descriptor_json("application/vnd.oci.image.config.v1+json", &configs[1]),
            "layers": [],
        }));
        let ref_blob_a = b"conformance reference blob A".to_vec();
        let ref_blob_b = b"conformance reference blob B, a little longer".to_vec();
        let empty = descriptor_json(EMPTY_JSON, b"{}");
        let subject = |m: &[u8]| descriptor_json(OCI_MANIFEST, m);
        let config_artifact = |kind: &str, blob: &[u8], note: &str| {
            pretty(&serde_json::json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": descriptor_json(kind, blob),
                "layers": [empty],
                "subject": subject(&manifests[4]),
                "annotations": {ANNOTATION: note},
            }))
        };
        let layer_artifact = |kind: &str, blob: &[u8], subject_of: &[u8], note: Option<&str>| {
            let mut m = serde_json::json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
                "config": empty,
                "layers": [descriptor_json(kind, blob)],
                "subject": subject(subject_of),
            });
            if let Some(note) = note {
                m["annotations"] = serde_json::json!({ ANNOTATION: note });
            }
            pretty(&m)
        };
        let refs_a_config = config_artifact(TYPE_A, &ref_blob_a, "config a");
        let refs_b_config = config_artifact(TYPE_B, &ref_blob_b, "config b");
        let refs_a_layer = layer_artifact(TYPE_A, &ref_blob_a, &manifests[4], Some("layer a"));
        let refs_b_layer = layer_artifact(TYPE_B, &ref_blob_b, &manifests[4], Some("layer b"));
        let refs_c_layer = layer_artifact(TYPE_B, &ref_blob_b, &manifests[3], None);
        let refs_index = pretty(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": TYPE_INDEX,
            "manifests": [subject(&refs_a_config), subject(&refs_a_layer)],
            "subject": subject(&manifests[4]),
            "annotations": {ANNOTATION: "index"},
        }));
        Fixtures {
            configs,
            layer,
            manifests,
            empty_layer_manifest,
            blob_a: random_bytes(1002, 42),
            blob_b: random_bytes(1003, 42),
            ref_blob_a,
            ref_blob_b,
            refs_a_config,
            refs_a_layer,
            refs_b_config,
            refs_b_layer,
            refs_index,
            refs_c_layer,
            dummy_digest: digest_of(b"hello world"),
        }
    }

    /// The annotation each referrer of `manifests[4]` carries, by digest.
    fn annotations(&self) -> Vec<(String, &'static str)> {
        vec![
            (digest_of(&self.refs_a_config), "config a"),
            (digest_of(&self.refs_a_layer), "layer a"),
            (digest_of(&self.refs_b_config), "config b"),
            (digest_of(&self.refs_b_layer), "layer b"),
            (digest_of(&self.refs_index), "index"),
        ]
    }
}

/// The suite's way of pushing a blob in its setup steps: POST, then PUT of the whole blob
/// to the session's `Location`.
fn post_put_blob(h: &Http, name: &str, bytes: &[u8]) -> Resp {
    let r = h.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None);
    assert_eq!(r.status, 202, "POST /blobs/uploads/");
    let location = r.header("Location").expect("a session Location").to_owned();
    let len = bytes.len().to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    h.send(
        "PUT",
        &format!("{location}{sep}digest={}", digest_of(bytes)),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", &len),
        ],
        Some(bytes),
    )
}

fn put_manifest(h: &Http, name: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
    h.send(
        "PUT",
        &format!("/v2/{name}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        Some(body),
    )
}

fn delete(h: &Http, path: &str) -> u16 {
    h.send("DELETE", path, &[], None).status
}

fn tag_list(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200);
    serde_json::from_value(r.json()["tags"].clone()).unwrap()
}

/// The error codes distribution-spec v1.1 defines: a 4xx body's first code must be one.
const SPEC_ERROR_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

fn conformance_pull(h: &Http, name: &str, f: &Fixtures) {
    // Setup: two configs and the layer by POST + PUT, manifests[0] by tag, [1] by digest.
    for blob in [&f.configs[0], &f.configs[1], &f.layer] {
        assert!(is_2xx(post_put_blob(h, name, blob).status));
    }
    let tag = "tagtest0";
    assert!(is_2xx(
        put_manifest(h, name, tag, OCI_MANIFEST, &f.manifests[0]).status
    ));
    let m1 = digest_of(&f.manifests[1]);
    assert!(is_2xx(
        put_manifest(h, name, &m1, OCI_MANIFEST, &f.manifests[1]).status
    ));

    // Pull blobs: HEAD/GET of a missing blob 404; of a present one 200, with its digest.
    let blob = |method: &str, digest: &str| {
        h.send(method, &format!("/v2/{name}/blobs/{digest}"), &[], None)
    };
    assert_eq!(blob("HEAD", &f.dummy_digest).status, 404);
    let c0 = digest_of(&f.configs[0]);
    let r = blob("HEAD", &c0);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(c0.as_str()));
    assert_eq!(
        r.header("Content-Length"),
        Some(f.configs[0].len().to_string().as_str())
    );
    assert_eq!(blob("GET", &f.dummy_digest).status, 404);
    let r = blob("GET", &c0);
    assert_eq!((r.status, &r.body), (200, &f.configs[0]));

    // Pull manifests, with the Accept header the suite sends: missing 404; by digest and by
    // tag 200, with the digest of what was pushed.
    let manifest = |method: &str, reference: &str| {
        h.send(
            method,
            &format!("/v2/{name}/manifests/{reference}"),
            &[("Accept", OCI_MANIFEST)],
            None,
        )
    };
    assert_eq!(manifest("HEAD", NOT_A_REFERENCE).status, 404);
    let m0 = digest_of(&f.manifests[0]);
    for (reference, digest) in [(m0.as_str(), &m0), (m1.as_str(), &m1), (tag, &m0)] {
        let r = manifest("HEAD", reference);
        assert_eq!(r.status, 200, "HEAD {reference}");
        assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    }
    assert_eq!(manifest("GET", NOT_A_REFERENCE).status, 404);
    for (reference, body) in [
        (m0.as_str(), &f.manifests[0]),
        (m1.as_str(), &f.manifests[1]),
    ] {
        let r = manifest("GET", reference);
        assert_eq!((r.status, &r.body), (200, body), "GET {reference}");
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
    }
    let r = manifest("GET", tag);
    assert_eq!((r.status, &r.body), (200, &f.manifests[0]));

    // Error codes: a GET by a malformed digest is 400 or 404; a 400 carries a spec code.
    let r = h.send(
        "GET",
        &format!("/v2/{name}/manifests/sha256:totallywrong"),
        &[("Content-Type", OCI_MANIFEST)],
        Some(b"blablabla"),
    );
    assert!(r.status == 400 || r.status == 404, "{}", r.status);
    assert!(
        SPEC_ERROR_CODES.contains(&r.code().as_str()),
        "{}",
        r.code()
    );
    // (The suite's older PUT form of the same check.)
    let r = put_manifest(h, name, "sha256:totallywrong", OCI_MANIFEST, b"blablabla");
    assert!(r.status == 400 || r.status == 404, "{}", r.status);
    assert!(
        SPEC_ERROR_CODES.contains(&r.code().as_str()),
        "{}",
        r.code()
    );

    // Teardown, manifests first (the suite's default): 2xx (or 405 where deletion is
    // disabled; blobs also 404).
    for m in [&m0, &m1] {
        assert!(is_2xx(delete(h, &format!("/v2/{name}/manifests/{m}"))));
    }
    for b in [&f.configs[0], &f.configs[1], &f.layer] {
        assert!(is_2xx(delete(
            h,
            &format!("/v2/{name}/blobs/{}", digest_of(b))
        )));
    }
}

fn conformance_push(h: &Http, name: &str, crossmount: &str, f: &Fixtures) {
    // Blob upload, streamed: POST, a PATCH of the whole blob without Content-Range (202),
    // then a PUT with the digest and no body (201 with Location).
    let r = h.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None);
    let location = r.header("Location").expect("Location").to_owned();
    let r = h.send(
        "PATCH",
        &location,
        &[("Content-Type", "application/octet-stream")],
        Some(&f.blob_a),
    );
    assert_eq!(r.status, 202);
    let location = r.header("Location").expect("Location").to_owned();
    // (The suite sets a Content-Length header of the blob's size here, which Go's client
    // replaces by the real one, 0: no body.)
    let r = h.send(
        "PUT",
        &format!("{location}?digest={}", digest_of(&f.blob_a)),
        &[("Content-Type", "application/octet-stream")],
        None,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("Location").is_some_and(|l| !l.is_empty()));

    // Blob upload, monolithic: POST with digest and body (201 or 202: this server takes the
    // blob, 201, so the GET that follows is 200, not 404), then POST + PUT, then the layer.
    let c1 = digest_of(&f.configs[1]);
    assert_eq!(
        h.get(&format!("/v2/{name}/blobs/{}", f.dummy_digest))
            .status,
        404
    );
    let len = f.configs[1].len().to_string();
    let r = h.send(
        "POST",
        &format!("/v2/{name}/blobs/uploads/?digest={c1}"),
        &[
            ("Content-Length", &len),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(&f.configs[1]),
    );
    assert_eq!(r.status, 201);
    assert!(r.header("Location").is_some_and(|l| !l.is_empty()));
    assert_eq!(h.get(&format!("/v2/{name}/blobs/{c1}")).status, 200);
    let r = post_put_blob(h, name, &f.configs[1]);
    assert_eq!(r.status, 201);
    assert!(r.header("Location").is_some_and(|l| !l.is_empty()));
    assert_eq!(h.get(&format!("/v2/{name}/blobs/{c1}")).status, 200);
    let r = post_put_blob(h, name, &f.layer);
    assert_eq!(r.status, 201);
    assert!(r.header("Location").is_some_and(|l| !l.is_empty()));
    assert_eq!(
        h.get(&format!("/v2/{name}/blobs/{}", digest_of(&f.layer)))
            .status,
        200
    );

    // Blob upload, chunked. A session's first chunk that does not start at 0: 416.
    let (chunk1, chunk2) = f.blob_b.split_at(f.blob_b.len() / 2 + 1);
    let range1 = format!("0-{}", chunk1.len() - 1);
    let range2 = format!("{}-{}", chunk1.len(), f.blob_b.len() - 1);
    let patch = |location: &str, range: &str, chunk: &[u8]| {
        let len = chunk.len().to_string();
        h.send(
            "PATCH",
            location,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
                ("Content-Range", range),
            ],
            Some(chunk),
        )
    };
    let start = || {
        let r = h.send(
            "POST",
            &format!("/v2/{name}/blobs/uploads/"),
            &[("Content-Length", "0")],
            None,
        );
        assert_eq!(r.status, 202);
        // A minimum chunk size is optional; when a server gives one it is honoured.
        assert_eq!(r.header("OCI-Chunk-Min-Length"), None);
        r.header("Location").expect("Location").to_owned()
    };
    let location = start();
    assert_eq!(patch(&location, &range2, chunk2).status, 416);
    // The first chunk: 202 with `Range` the range received.
    let first = start();
    let r = patch(&first, &range1, chunk1);
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range"), Some(range1.as_str()));
    // The same chunk again, to the session's first URL: 416.
    assert_eq!(patch(&first, &range1, chunk1).status, 416);
    // Status of the session: 204 with Location and Range.
    let r = h.get(&first);
    assert_eq!(r.status, 204);
    assert!(r.header("Location").is_some_and(|l| !l.is_empty()));
    assert_eq!(r.header("Range"), Some(range1.as_str()));
    let location = r.header("Location").unwrap().to_owned();
    // The second chunk: 202 with a Location; then a PUT with the digest and no body: 201.
    let r = patch(&location, &range2, chunk2);
    assert_eq!(r.status, 202);
    let location = r.header("Location").expect("Location").to_owned();
    let r = h.send(
        "PUT",
        &format!("{location}?digest={}", digest_of(&f.blob_b)),
        &[
            ("Content-Length", "0"),
            ("Content-Type", "application/octet-stream"),
        ],
        None,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("Location").is_some_and(|l| !l.is_empty()));
    assert_eq!(
        h.get(&format!("/v2/{name}/blobs/{}", digest_of(&f.blob_b)))
            .body,
        f.blob_b
    );

    // Cross-repository mount. Without `from`, of a blob no repository has: 202 and a
    // session Location.
    let r = h.send(
        "POST",
        &format!("/v2/{crossmount}/blobs/uploads/?mount={}", f.dummy_digest),
        &[],
        None,
    );
    assert_eq!(r.status, 202);
    assert!(
        r.header("Location")
            .is_some_and(|l| l.starts_with(&format!("/v2/{crossmount}/blobs/uploads/")))
    );
    // With `from`: 201 (202 is the other answer allowed), Location the blob's URL, which
    // serves it.
    let a = digest_of(&f.blob_a);
    let r = h.send(
        "POST",
        &format!("/v2/{crossmount}/blobs/uploads/?mount={a}&from={name}"),
        &[],
        None,
    );
    assert_eq!(r.status, 201);
    let location = r.header("Location").unwrap().to_owned();
    assert_eq!(location, format!("/v2/{crossmount}/blobs/{a}"));
    assert_eq!(r.header("Docker-Content-Digest"), Some(a.as_str()));
    assert_eq!(h.get(&location).status, 200);
    // Without `from`, of a blob another repository has: this server finds it (automatic
    // content discovery), 201.
    let other = format!("{crossmount}-auto");
    let r = h.send(
        "POST",
        &format!("/v2/{other}/blobs/uploads/?mount={a}"),
        &[],
        None,
    );
    assert_eq!(r.status, 201);
    assert_eq!(h.get(&format!("/v2/{other}/blobs/{a}")).body, f.blob_a);

    // Manifest upload: missing 404; the same manifest under four tags, each 201 with a
    // Location; a manifest without layers (and without mediaType) 201; GET by digest 200.
    assert_eq!(
        h.get(&format!("/v2/{name}/manifests/{NOT_A_REFERENCE}"))
            .status,
        404
    );
    for i in 0..4 {
        let r = put_manifest(h, name, &format!("test{i}"), OCI_MANIFEST, &f.manifests[1]);
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.header("Location").is_some_and(|l| !l.is_empty()));
    }
    let r = put_manifest(h, name, "emptylayer", OCI_MANIFEST, &f.empty_layer_manifest);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let empty_digest = digest_of(&f.empty_layer_manifest);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/{name}/manifests/{empty_digest}").as_str())
    );
    let r = h.get(&format!("/v2/{name}/manifests/emptylayer"));
    assert_eq!(r.body, f.empty_layer_manifest);
    assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
    let m1 = digest_of(&f.manifests[1]);
    let r = h.send(
        "GET",
        &format!("/v2/{name}/manifests/{m1}"),
        &[("Accept", OCI_MANIFEST)],
        None,
    );
    assert_eq!((r.status, &r.body), (200, &f.manifests[1]));

    // Teardown, manifests first: 2xx; then blobs: 2xx or 404.
    assert!(is_2xx(delete(h, &format!("/v2/{name}/manifests/{m1}"))));
    assert!(is_2xx(delete(
        h,
        &format!("/v2/{name}/manifests/{empty_digest}")
    )));
    for b in [&f.configs[1], &f.layer] {
        let status = delete(h, &format!("/v2/{name}/blobs/{}", digest_of(b)));
        assert!(is_2xx(status) || status == 404, "{status}");
    }
}

fn conformance_discovery(h: &Http, name: &str, f: &Fixtures) {
    // Setup: config[2], the layer, manifests[2] under test0..test3.
    assert!(is_2xx(post_put_blob(h, name, &f.configs[2]).status));
    assert!(is_2xx(post_put_blob(h, name, &f.layer).status));
    for i in 0..4 {
        let r = put_manifest(h, name, &format!("test{i}"), OCI_MANIFEST, &f.manifests[2]);
        assert!(is_2xx(r.status));
    }
    // Referrers setup: the empty JSON blob (its well-known digest), reference blob A, then
    // artifacts whose subject (manifests[4]) is not there yet: each PUT answers OCI-Subject.
    assert_eq!(
        digest_of(b"{}"),
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert!(is_2xx(post_put_blob(h, name, b"{}").status));
    assert!(is_2xx(post_put_blob(h, name, &f.ref_blob_a).status));
    let m4 = digest_of(&f.manifests[4]);
    let m3 = digest_of(&f.manifests[3]);
    let put_referrer = |body: &[u8], media_type: &str, subject: &str| {
        let r = put_manifest(h, name, &digest_of(body), media_type, body);
        assert!(is_2xx(r.status), "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("OCI-Subject"), Some(subject));
    };
    put_referrer(&f.refs_a_config, OCI_MANIFEST, &m4);
    put_referrer(&f.refs_a_layer, OCI_MANIFEST, &m4);
    put_referrer(&f.refs_index, OCI_INDEX, &m4);
    // The subject itself, then reference blob B and its artifacts, and one whose subject is
    // never pushed.
    assert!(is_2xx(post_put_blob(h, name, &f.configs[4]).status));
    assert!(is_2xx(post_put_blob(h, name, &f.layer).status));
    let r = put_manifest(h, name, "tagtest0", OCI_MANIFEST, &f.manifests[4]);
    assert!(is_2xx(r.status));
    assert!(is_2xx(post_put_blob(h, name, &f.ref_blob_b).status));
    put_referrer(&f.refs_b_config, OCI_MANIFEST, &m4);
    put_referrer(&f.refs_b_layer, OCI_MANIFEST, &m4);
    put_referrer(&f.refs_c_layer, OCI_MANIFEST, &m3);

    // Listing tags: 200; `n` limits the count; `last` sets where the list starts.
    let all = tag_list(&h.get(&format!("/v2/{name}/tags/list")));
    assert_eq!(all, ["tagtest0", "test0", "test1", "test2", "test3"]);
    let n = all.len() / 2;
    let first = tag_list(&h.get(&format!("/v2/{name}/tags/list?n={n}")));
    assert_eq!(first, all[..n]);
    let r = h.get(&format!("/v2/{name}/tags/list?n={n}&last={}", first[n - 1]));
    let next = tag_list(&r);
    assert!(next.len() <= n);
    assert_eq!(next, all[n..2 * n]);

    // Listing referrers.
    let referrers = |digest: &str, query: &str| {
        let r = h.get(&format!("/v2/{name}/referrers/{digest}{query}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
        let index = r.json();
        let manifests = index["manifests"].as_array().unwrap().clone();
        (
            manifests,
            r.header("OCI-Filters-Applied").map(str::to_owned),
        )
    };
    // Of a digest nothing refers to: an empty index.
    assert!(referrers(&f.dummy_digest, "").0.is_empty());
    // Of manifests[4]: its five referrers, each with its one annotation.
    let annotations = f.annotations();
    let check = |list: &[serde_json::Value]| {
        for d in list {
            let digest = d["digest"].as_str().unwrap();
            let want = annotations
                .iter()
                .find(|(k, _)| k == digest)
                .unwrap_or_else(|| panic!("unexpected referrer {digest}"))
                .1;
            let got = d["annotations"].as_object().expect("annotations");
            assert_eq!(got.len(), 1, "{digest}");
            assert_eq!(got[ANNOTATION], want, "{digest}");
        }
    };
    let (list, filters) = referrers(&m4, "");
    assert_eq!(list.len(), 5);
    assert_eq!(filters, None);
    let mut digests: Vec<&str> = list.iter().map(|d| d["digest"].as_str().unwrap()).collect();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 5);
    check(&list);
    // The index's own artifactType is listed with it.
    let index_entry = list
        .iter()
        .find(|d| d["digest"] == digest_of(&f.refs_index))
        .unwrap();
    assert_eq!(index_entry["mediaType"], OCI_INDEX);
    assert_eq!(index_entry["artifactType"], TYPE_INDEX);
    // Filtered by artifactType: the two of type A (one by config media type, one by
    // artifactType), and the header that says the filter was applied.
    let (list, filters) = referrers(&m4, &format!("?artifactType={TYPE_A}"));
    assert_eq!(filters.as_deref(), Some("artifactType"));
    assert_eq!(list.len(), 2);
    check(&list);
    assert!(list.iter().all(|d| d["artifactType"] == TYPE_A));
    // Of a manifest that was never pushed: the one artifact that names it.
    let (list, _) = referrers(&m3, "");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], digest_of(&f.refs_c_layer));

    // Teardown (manifests first): every DELETE 2xx or 404; a tag passed where the suite
    // means a digest deletes the tag.
    let mut references: Vec<String> = [
        &f.refs_index,
        &f.manifests[2],
        &f.manifests[4],
        &f.refs_a_config,
        &f.refs_a_layer,
    ]
    .iter()
    .map(|b| digest_of(b))
    .collect();
    references.push("tagtest0".into());
    references.extend([&f.refs_b_config, &f.refs_b_layer, &f.refs_c_layer].map(|b| digest_of(b)));
    for reference in &references {
        let status = delete(h, &format!("/v2/{name}/manifests/{reference}"));
        assert!(is_2xx(status) || status == 404, "{reference}: {status}");
    }
    for b in [&f.configs[2], &f.layer] {
        assert!(is_2xx(delete(
            h,
            &format!("/v2/{name}/blobs/{}", digest_of(b))
        )));
    }
    for b in [&f.configs[4][..], &f.ref_blob_a, &f.ref_blob_b, b"{}"] {
        let status = delete(h, &format!("/v2/{name}/blobs/{}", digest_of(b)));
        assert!(is_2xx(status) || status == 404, "{status}");
    }
    assert!(tag_list(&h.get(&format!("/v2/{name}/tags/list"))).is_empty());
}

fn conformance_management(h: &Http, name: &str, f: &Fixtures) {
    // Setup: config[3], the layer, manifests[3] under a tag; count the tags.
    assert!(is_2xx(post_put_blob(h, name, &f.configs[3]).status));
    assert!(is_2xx(post_put_blob(h, name, &f.layer).status));
    let tag = "tagtest0";
    assert!(is_2xx(
        put_manifest(h, name, tag, OCI_MANIFEST, &f.manifests[3]).status
    ));
    let before = tag_list(&h.get(&format!("/v2/{name}/tags/list"))).len();

    // Manifest delete: the tag, 202 (400 UNSUPPORTED or 405 where tag deletion is not
    // allowed); then the manifest by digest, 202 (404 allowed: the tag's delete may have
    // taken it; here it does not); then GET by digest 404, and the tag list is shorter.
    assert_eq!(delete(h, &format!("/v2/{name}/manifests/{tag}")), 202);
    let m3 = digest_of(&f.manifests[3]);
    assert_eq!(delete(h, &format!("/v2/{name}/manifests/{m3}")), 202);
    assert_eq!(h.get(&format!("/v2/{name}/manifests/{m3}")).status, 404);
    let after = tag_list(&h.get(&format!("/v2/{name}/tags/list"))).len();
    assert!(after < before, "{after} tags after, {before} before");

    // Blob delete: 202 (404 and 405 allowed), then GET 404.
    for b in [&f.configs[3], &f.layer] {
        assert_eq!(
            delete(h, &format!("/v2/{name}/blobs/{}", digest_of(b))),
            202
        );
    }
    let r = h.get(&format!("/v2/{name}/blobs/{}", digest_of(&f.configs[3])));
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
}

#[test]
fn conformance_workflows_in_the_suites_order() {
    let server = Served::start();
    let h = Http::new(&server.addr);
    let name = "conformance/workflows";
    let crossmount = "conformance/crossmount-0f1e2d3c";
    let f = Fixtures::new();
    // `/v2/` first, as every client does.
    assert_eq!(h.get("/v2/").status, 200);
    conformance_pull(&h, name, &f);
    conformance_push(&h, name, crossmount, &f);
    conformance_discovery(&h, name, &f);
    conformance_management(&h, name, &f);
}

/// A 4xx answer: "If the response body is in JSON format ... The `code` field MUST be one of"
/// the spec's codes; any other body format is allowed.
fn assert_spec_error(r: &Resp, status: u16, what: &str) {
    assert_eq!(
        r.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let json = r
        .header("Content-Type")
        .is_some_and(|c| c.starts_with("application/json"));
    if json {
        let errors = r.json()["errors"].as_array().cloned().unwrap_or_default();
        assert!(!errors.is_empty(), "{what}: a JSON error body lists errors");
        for e in errors {
            let code = e["code"].as_str().unwrap_or_default();
            assert!(SPEC_ERROR_CODES.contains(&code), "{what}: code {code:?}");
        }
    } else {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&r.body).is_err() || r.body.is_empty(),
            "{what}: JSON without a JSON Content-Type"
        );
    }
}

#[test]
fn error_bodies_carry_only_the_specs_codes() {
    let server = Served::start_with(|s| s.max_blob_size(1000));
    let h = Http::new(&server.addr);
    let name = "errors/repo";
    let config = b"{}";
    let c = post_blob(&h, name, config);
    let unknown = digest_of(b"unknown");
    let post = |path: &str, body: Option<&[u8]>| h.send("POST", path, &[], body);

    // Routes and methods.
    assert_spec_error(&h.get("/v2/nothing/here"), 404, "unknown route");
    assert_spec_error(&h.get("/nope"), 404, "outside /v2");
    assert_spec_error(&post("/v2/", None), 405, "POST /v2/");
    assert_spec_error(
        &h.send("PATCH", &format!("/v2/{name}/manifests/x"), &[], None),
        405,
        "PATCH a manifest",
    );
    assert_spec_error(&h.get("/v2/Bad/tags/list"), 400, "invalid name");
    // Listings.
    assert_spec_error(&h.get("/v2/no/such/tags/list"), 404, "unknown repository");
    assert_spec_error(
        &h.get(&format!("/v2/{name}/tags/list?n=many")),
        400,
        "invalid n",
    );
    assert_spec_error(&h.get("/v2/_catalog?n=-1"), 400, "invalid catalog n");
    assert_spec_error(
        &h.get(&format!("/v2/{name}/referrers/sha256:zz")),
        400,
        "invalid referrers digest",
    );
    // Blobs.
    assert_spec_error(&h.get(&format!("/v2/{name}/blobs/{unknown}")), 404, "blob");
    assert_spec_error(&h.get(&format!("/v2/{name}/blobs/md5:00")), 400, "digest");
    let r = h.send(
        "GET",
        &format!("/v2/{name}/blobs/{c}"),
        &[("Range", "bytes=10-")],
        None,
    );
    assert_spec_error(&r, 416, "range past the end");
    assert_eq!(r.header("Content-Range"), Some("bytes */2"));
    assert_spec_error(
        &h.send("DELETE", &format!("/v2/{name}/blobs/{unknown}"), &[], None),
        404,
        "delete an unknown blob",
    );
    // Uploads.
    let r = post(
        &format!("/v2/{name}/blobs/uploads/?digest={unknown}"),
        Some(b"x"),
    );
    assert_spec_error(&r, 400, "wrong digest");
    assert_spec_error(
        &post(
            &format!("/v2/{name}/blobs/uploads/?digest={}", digest_of(&[0; 2000])),
            Some(&[0; 2000]),
        ),
        413,
        "too large",
    );
    let upload = |what: &str| {
        let r = post(&format!("/v2/{name}/blobs/uploads/"), None);
        assert_eq!(r.status, 202, "{what}");
        r.header("Location").unwrap().to_owned()
    };
    let location = upload("session");
    // "A 416 will be returned under the following conditions: Invalid Content-Range header
    // format; Out of order chunk".
    for range in ["bytes=0-1", "0-", "a-b", "1-0", "0-5"] {
        let r = h.send("PATCH", &location, &[("Content-Range", range)], Some(b"ab"));
        assert_spec_error(&r, 416, range);
        assert_eq!(r.header("Range"), Some("0-0"), "{range}");
        assert_eq!(r.header("Location"), Some(location.as_str()), "{range}");
    }
    assert_spec_error(
        &h.send("PUT", &location, &[], Some(b"ab")),
        400,
        "PUT without digest",
    );
    let gone = format!("/v2/{name}/blobs/uploads/00000000000000000000000000000000");
    assert_spec_error(&h.get(&gone), 404, "unknown session");
    assert_spec_error(
        &h.send("DELETE", &gone, &[], None),
        404,
        "cancel an unknown session",
    );
    // Manifests.
    assert_spec_error(
        &h.get(&format!("/v2/{name}/manifests/{NOT_A_REFERENCE}")),
        404,
        "invalid reference",
    );
    assert_spec_error(
        &put_manifest(&h, name, "v1", OCI_MANIFEST, b"not json"),
        400,
        "manifest invalid",
    );
    let missing = manifest_json(config, &[b"absent"]);
    assert_spec_error(
        &put_manifest(&h, name, "v1", OCI_MANIFEST, &missing),
        400,
        "manifest blob unknown",
    );
    assert_spec_error(
        &put_manifest(&h, name, "sha256:totallywrong", OCI_MANIFEST, b"blablabla"),
        400,
        "PUT by a malformed digest",
    );
    assert_spec_error(
        &h.send("DELETE", &format!("/v2/{name}/manifests/nope"), &[], None),
        404,
        "delete an unknown tag",
    );
}

#[test]
fn tags_follow_the_specs_grammar_and_4_mib_manifests_are_accepted() {
    let name = "grammar/tags";
    let (server, h, manifest) = served_with_empty_image(name);
    // "<reference> as a tag MUST be at most 128 characters in length and MUST match the
    // following regular expression: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}".
    let longest = format!("a{}", "b".repeat(127));
    let mut good = vec!["_x", "A.b-C", "0", "x..y__z--"];
    good.push(&longest);
    for tag in &good {
        let r = put_manifest(&h, name, tag, OCI_MANIFEST, &manifest);
        assert_eq!(r.status, 201, "{tag}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(h.get(&format!("/v2/{name}/manifests/{tag}")).body, manifest);
    }
    let mut listed = tag_list(&h.get(&format!("/v2/{name}/tags/list")));
    listed.sort();
    let mut want: Vec<String> = good.iter().map(|t| t.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    let too_long = format!("a{}", "b".repeat(128));
    for tag in [".x", "-x", too_long.as_str(), "a+b"] {
        let r = put_manifest(&h, name, tag, OCI_MANIFEST, &manifest);
        assert_spec_error(&r, 400, tag);
    }
    // "Client and registry implementations SHOULD expect to be able to support manifest
    // pushes of at least 4 megabytes": one of exactly 4 MiB is taken, one byte more is 413.
    let mut big = manifest.clone();
    big.pop(); // the closing brace
    big.resize((4 << 20) - 1, b' ');
    big.push(b'}');
    assert_eq!(big.len(), 4 << 20);
    let r = put_manifest(&h, name, "big", OCI_MANIFEST, &big);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(h.get(&format!("/v2/{name}/manifests/big")).body, big);
    big.insert(1, b' ');
    let r = put_manifest(&h, name, "bigger", OCI_MANIFEST, &big);
    assert_spec_error(&r, 413, "4 MiB + 1");
    // Tags that are no layout reference names are stored under names that are: the
    // repository stays a valid layout.
    let layout = ocikit_layout::Layout::open(server.layout_dir(name)).unwrap();
    assert!(layout.fsck().unwrap().is_ok());
    // Deleting such a tag works like any other.
    assert_eq!(delete(&h, &format!("/v2/{name}/manifests/_x")), 202);
    assert_eq!(h.get(&format!("/v2/{name}/manifests/_x")).status, 404);
}

/// Sends `bytes` on a new connection and reads what comes back until the server closes it
/// (or 5 s pass).
fn raw_exchange(addr: &str, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    // The server may answer and close before it has read everything: a failed write is fine.
    let _ = conn.write_all(bytes);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn request_heads_and_chunk_lines_are_bounded() {
    // A client must not make the server buffer without end: a header line that never ends,
    // too many fields, a chunk-size line that never ends. Each is refused at its bound, and
    // the server goes on serving.
    let server = Served::start();
    let mut long = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 200 * 1024));
    let answer = raw_exchange(&server.addr, &long);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    let mut many = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..150 {
        many.extend(format!("X-{i}: y\r\n").bytes());
    }
    many.extend(b"\r\n");
    let answer = raw_exchange(&server.addr, &many);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    let h = Http::new(&server.addr);
    let r = h.send("POST", "/v2/bounded/chunks/blobs/uploads/", &[], None);
    let location = r.header("Location").unwrap().to_owned();
    let mut endless =
        format!("PATCH {location} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    endless.extend(std::iter::repeat_n(b'f', 64 * 1024));
    let answer = raw_exchange(&server.addr, &endless);
    // The body cannot be read: the upload fails and the connection closes.
    assert!(!answer.starts_with("HTTP/1.1 202"), "{answer:?}");

    // Still serving.
    assert_eq!(h.get("/v2/").status, 200);
}

#[test]
fn chunked_and_pipelined_requests_are_served() {
    // Go clients stream uploads with Transfer-Encoding: chunked; HTTP/1.1 clients may send
    // the next request before the answer to the last.
    let server = Served::start();
    let h = Http::new(&server.addr);
    let name = "chunked/body";
    let r = h.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None);
    let location = r.header("Location").unwrap().to_owned();
    let blob: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let mut request =
        format!("PATCH {location} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for part in [&blob[..1], &blob[1..30_000], &blob[30_000..]] {
        request.extend(format!("{:x};ext=1\r\n", part.len()).bytes());
        request.extend(part);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    // Pipelined behind it: the status of the session, then the end of the connection.
    request
        .extend(format!("GET {location} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").bytes());
    let answer = raw_exchange(&server.addr, &request);
    let responses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i..])
        .collect();
    assert_eq!(responses.len(), 2, "{answer:?}");
    assert!(responses[0].starts_with("HTTP/1.1 202"), "{answer:?}");
    assert!(responses[1].starts_with("HTTP/1.1 204"), "{answer:?}");
    assert!(answer.contains("Range: 0-69999"), "{answer:?}");
    let digest = sha256(&blob).to_string();
    let r = h.send("PUT", &format!("{location}?digest={digest}"), &[], None);
    assert_eq!(r.status, 201);
    assert_eq!(h.get(&format!("/v2/{name}/blobs/{digest}")).body, blob);
}
