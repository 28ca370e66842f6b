//! Prints the OCI digest and size of each file named, streaming it through
//! [`ocikit_image::digest_reader`] (bounded memory whatever the size), like `sha256sum`:
//!
//! ```text
//! cargo run --release -p ocikit-image --example sha256sum -- FILE...
//! ```
//!
//! `benches/sha256-vs-openssl.sh` uses it for the peak RSS next to `openssl dgst`.

use std::fs::File;
use std::process::ExitCode;

use ocikit_image::oci_spec::image::DigestAlgorithm;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: sha256sum FILE...");
        return ExitCode::from(2);
    }
    let mut status = ExitCode::SUCCESS;
    for path in files {
        let digested = File::open(&path)
            .map_err(ocikit_image::Error::from)
            .and_then(|f| ocikit_image::digest_reader(&DigestAlgorithm::Sha256, f));
        match digested {
            Ok((digest, size)) => println!("{digest}  {size}  {path}"),
            Err(e) => {
                eprintln!("sha256sum: {path}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
