//! Our registry (`RegistryServer`, feature `server`) at the HTTP level: the distribution-spec
//! v1.1 workflows (pull, push, content discovery, content management, referrers) with the
//! statuses, headers and error codes the spec gives; skopeo against it; basic auth;
//! concurrent clients. The client suite of `tests/registry.rs` runs against it as well.

mod common;
mod support;

use std::process::Command;

use oci_distribution::oci_image::{ImageSource, Manifest, TagOrDigest, sha256};
use oci_distribution::oci_spec::image::{Descriptor, DigestAlgorithm, MediaType};
use oci_distribution::{Client, Credentials, Htpasswd};
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
    let d512 = oci_distribution::oci_image::digest_bytes(&DigestAlgorithm::Sha512, &layer3)
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
    let d512 = oci_distribution::oci_image::digest_bytes(&DigestAlgorithm::Sha512, &manifest)
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
    let layout = oci_layout::Layout::open(server.layout_dir(name)).unwrap();
    assert!(layout.has_blob(&layer1_digest(&layer1)).unwrap());
}

fn layer1_digest(b: &[u8]) -> oci_distribution::oci_spec::image::Digest {
    sha256(b)
}

fn range_len(range: &str) -> usize {
    let (a, b) = range.split_once('-').unwrap();
    (b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1).min(200_000)
}

#[test]
fn tags_and_catalog_page_at_their_boundaries() {
    let server = Served::start();
    let h = Http::new(&server.addr);
    let name = "paging/repo";
    let config = b"{}";
    post_blob(&h, name, config);
    let manifest = manifest_json(config, &[]);
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
    post_blob(&h, "paging/other", config);
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
    let server = Served::start();
    let h = Http::new(&server.addr);
    let name = "refs/app";
    let config = b"{}";
    post_blob(&h, name, config);
    let image = manifest_json(config, &[]);
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
        &oci_distribution::oci_image::AnyManifest::Index(index.clone()),
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
    // What was served is a valid layout, as the spec checker of oci-layout sees it.
    let layout = oci_layout::Layout::open(server.layout_dir("skopeo/dst")).unwrap();
    assert!(layout.fsck().unwrap().is_ok());
}

/// Pushes an image whose layers are gzip streams (of random bytes, made by `gzip`).
fn push_gzip_image(repo: &oci_distribution::Repository, arch: &str, seeds: &[u64]) -> Manifest {
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
    let layout = oci_layout::Layout::open(server.layout_dir("concurrent/shared")).unwrap();
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
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
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
    let mut buf = [0u8; 1024];
    let n = first.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
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
    let e = oci_distribution::RegistryServer::new(first.dir.path())
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(e.to_string().contains("another server"), "{e}");
    // Once the first stops, the root can be served again, with what it stored.
    post_blob(&Http::new(&first.addr), "kept/repo", b"kept");
    first.handle.take().unwrap().stop();
    let again = oci_distribution::RegistryServer::new(first.dir.path())
        .bind("127.0.0.1:0")
        .unwrap();
    let h = Http::new(&again.addr().to_string());
    let r = h.get(&format!("/v2/kept/repo/blobs/{}", sha256(b"kept")));
    assert_eq!(r.body, b"kept");
}
