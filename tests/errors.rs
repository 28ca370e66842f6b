//! Every error type of the facade and of its crates prints each cause once: an error either
//! says its cause in its message or returns it from `source()`, never both (the convention of
//! the Rust API guidelines), so a program that prints the whole chain, as `anyhow` and most
//! command lines do, shows each cause once. One error of each variant that has a cause,
//! alone and wrapped the way the crates wrap each other.

use std::error::Error as StdError;
use std::io;

use ocikit::ErrorChain;
use ocikit::convert::ConvertError;
use ocikit::store::StoreError;
use ocikit::trust::TrustError;

/// A leaf cause whose text appears nowhere else.
fn leaf(n: u32) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, format!("leaf cause {n}"))
}

fn digest(c: char) -> ocikit::oci_spec::image::Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

/// Prints `error`'s chain and checks: no link says its cause's text, each cause's text
/// appears once in the printed chain, and the leaf `leaf` is in it exactly once.
fn check(name: &str, error: &(dyn StdError + 'static), leaf: &str) {
    let printed = ErrorChain(error).to_string();
    let mut links = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(c) = cause {
        links.push(c.to_string());
        cause = c.source();
    }
    for pair in links.windows(2) {
        assert!(
            !pair[0].contains(&pair[1]),
            "{name}: {:?} repeats its cause {:?} (chain: {printed})",
            pair[0],
            pair[1]
        );
    }
    for cause in &links[1..] {
        assert_eq!(
            printed.matches(cause.as_str()).count(),
            1,
            "{name}: {cause:?} is printed more than once: {printed}"
        );
    }
    assert_eq!(
        printed.matches(leaf).count(),
        1,
        "{name}: the cause {leaf:?} must print once: {printed}"
    );
}

fn image_errors() -> Vec<(&'static str, ocikit::image::Error, &'static str)> {
    use ocikit::image::Error;
    vec![
        (
            "image::Apply",
            Error::Apply {
                path: "etc/passwd".into(),
                op: "create",
                source: leaf(1),
            },
            "leaf cause 1",
        ),
        ("image::Io", Error::Io(leaf(2)), "leaf cause 2"),
        (
            "image::Backend(distribution::Http)",
            Error::Backend(Box::new(http_error(3))),
            "leaf cause 3",
        ),
    ]
}

fn http_error(n: u32) -> ocikit::distribution::Error {
    ocikit::distribution::Error::Http {
        method: "GET".into(),
        url: "http://127.0.0.1:1/v2/".into(),
        source: ureq::Error::Io(leaf(n)),
    }
}

fn layout_errors() -> Vec<(&'static str, ocikit::layout::Error, &'static str)> {
    use ocikit::layout::Error;
    vec![
        (
            "layout::Io",
            Error::Io {
                path: "/l/index.json".into(),
                source: leaf(10),
            },
            "leaf cause 10",
        ),
        (
            "layout::Document",
            Error::Document {
                path: "/l/index.json".into(),
                source: Box::new(ocikit::image::Error::Apply {
                    path: "x".into(),
                    op: "read",
                    source: leaf(11),
                }),
            },
            "leaf cause 11",
        ),
        (
            "layout::Verification",
            Error::Verification {
                path: "/l/blobs/sha256/aa".into(),
                source: Box::new(ocikit::image::Error::DigestMismatch {
                    expected: digest('a'),
                    actual: digest('b'),
                }),
            },
            "digest mismatch",
        ),
        (
            "layout::Image",
            Error::Image(ocikit::image::Error::Io(leaf(12))),
            "leaf cause 12",
        ),
    ]
}

fn distribution_errors() -> Vec<(&'static str, ocikit::distribution::Error, &'static str)> {
    use ocikit::distribution::Error;
    vec![
        ("distribution::Http", http_error(20), "leaf cause 20"),
        (
            "distribution::Image",
            Error::Image(ocikit::image::Error::Apply {
                path: "x".into(),
                op: "write",
                source: leaf(21),
            }),
            "leaf cause 21",
        ),
        ("distribution::Io", Error::Io(leaf(22)), "leaf cause 22"),
    ]
}

fn runtime_io(n: u32) -> ocikit::runtime::Error {
    ocikit::runtime::Error::Io {
        context: "mount",
        path: Some("/proc".into()),
        source: leaf(n),
    }
}

fn store_errors() -> Vec<(&'static str, StoreError, &'static str)> {
    vec![
        (
            "store::Overlay",
            StoreError::Overlay {
                id: "c1".into(),
                source: runtime_io(30),
            },
            "leaf cause 30",
        ),
        (
            "store::CopySource",
            StoreError::CopySource {
                path: "/src/file".into(),
                source: leaf(31),
            },
            "leaf cause 31",
        ),
        (
            "store::Io",
            StoreError::Io {
                path: "/store/x".into(),
                source: leaf(32),
            },
            "leaf cause 32",
        ),
    ]
}

fn trust_errors() -> Vec<(&'static str, TrustError, &'static str)> {
    vec![
        (
            "trust::Io",
            TrustError::Io {
                path: "/etc/containers/policy.json".into(),
                source: leaf(40),
            },
            "leaf cause 40",
        ),
        (
            "trust::Image",
            TrustError::Image(ocikit::image::Error::Backend(Box::new(http_error(41)))),
            "leaf cause 41",
        ),
    ]
}

#[test]
fn every_crate_error_prints_each_cause_once() {
    for (name, e, leaf) in image_errors() {
        check(name, &e, leaf);
    }
    for (name, e, leaf) in layout_errors() {
        check(name, &e, leaf);
    }
    for (name, e, leaf) in distribution_errors() {
        check(name, &e, leaf);
    }
    check("runtime::Io", &runtime_io(50), "leaf cause 50");
    for (name, e, leaf) in store_errors() {
        check(name, &e, leaf);
    }
    for (name, e, leaf) in trust_errors() {
        check(name, &e, leaf);
    }
    let convert = ConvertError::Image(ocikit::image::Error::Io(leaf(60)));
    check("convert::Image", &convert, "leaf cause 60");
}

/// The facade's own variants, and every crate's error wrapped in it (as the facade's
/// functions return them), and the crates' errors carried through each other.
#[test]
fn wrapped_errors_print_each_cause_once() {
    use ocikit::Error;
    let own = [
        (
            "Io",
            Error::Io {
                path: "/b/config.json".into(),
                source: leaf(70),
            },
            "leaf cause 70",
        ),
        (
            "BuildDirectory",
            Error::BuildDirectory {
                path: "/no/such/dir".into(),
                source: leaf(71),
            },
            "leaf cause 71",
        ),
    ];
    for (name, e, leaf) in own {
        check(name, &e, leaf);
    }
    for (name, e, leaf) in image_errors() {
        check(name, &Error::Image(e), leaf);
    }
    for (name, e, leaf) in layout_errors() {
        check(name, &Error::Layout(e), leaf);
    }
    for (name, e, leaf) in layout_errors() {
        // A layout's error through the source and destination traits, as copy returns it.
        let through: ocikit::image::Error = e.into();
        check(name, &Error::Image(through), leaf);
    }
    for (name, e, leaf) in distribution_errors() {
        check(name, &Error::Distribution(e), leaf);
    }
    for (name, e, leaf) in distribution_errors() {
        let through: ocikit::image::Error = e.into();
        check(name, &Error::Image(through), leaf);
    }
    check(
        "Runtime(Io)",
        &Error::Runtime(runtime_io(72)),
        "leaf cause 72",
    );
    for (name, e, leaf) in store_errors() {
        check(name, &Error::Store(e), leaf);
    }
    for (name, e, leaf) in trust_errors() {
        check(name, &Error::Trust(e), leaf);
    }
    check(
        "Convert(Image)",
        &Error::Convert(ConvertError::Image(ocikit::image::Error::Io(leaf(73)))),
        "leaf cause 73",
    );
    // A typed error through io::Error and back, as verifying readers send it.
    let io = ocikit::image::Error::Apply {
        path: "x".into(),
        op: "read",
        source: leaf(74),
    }
    .into_io();
    check(
        "image::Error via io",
        &Error::Image(ocikit::image::Error::from(io)),
        "leaf cause 74",
    );
}

/// The cause a registry's connection error names, printed the way the issue saw it twice.
#[test]
fn a_refused_connection_prints_once() {
    let e = ocikit::Error::Distribution(http_error(80));
    let printed = ErrorChain(&e).to_string();
    assert_eq!(
        printed, "GET http://127.0.0.1:1/v2/: io: leaf cause 80",
        "{printed}"
    );
    // The message alone is the error's own part.
    assert_eq!(e.to_string(), "GET http://127.0.0.1:1/v2/");
}

/// A missing build directory is named as such, before anything is written.
#[test]
fn a_missing_build_directory_is_named() {
    use ocikit::build::{BuildSpec, build_image};
    let tmp = tempfile::tempdir().unwrap();
    let layout = ocikit::layout::Layout::create(tmp.path().join("layout")).unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("file"), "x").unwrap();
    let missing = tmp.path().join("missing");
    let spec = BuildSpec::new().layer(&tree).layer(&missing);
    let err = build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap_err();
    match &err {
        ocikit::Error::BuildDirectory { path, source } => {
            assert_eq!(path, &missing);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let printed = ErrorChain(&err).to_string();
    assert!(
        printed.starts_with(&format!("build directory {}: ", missing.display())),
        "{printed}"
    );
    assert_eq!(
        printed.matches("No such file or directory").count(),
        1,
        "{printed}"
    );
    // Nothing of the first layer was stored.
    let blobs = std::fs::read_dir(tmp.path().join("layout/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0);
}
