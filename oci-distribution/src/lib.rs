//! A blocking client for OCI registries (distribution-spec v1.1, and Docker Registry HTTP API
//! v2 as docker-registry serves it).
//!
//! A [`Client`] holds one HTTP agent (connections are reused), the credentials and the
//! tokens; a [`Repository`] is the handle of one `registry/name` and implements
//! [`ocikit_image::ImageSource`] and [`ocikit_image::ImageDestination`], so the generic copy of the
//! `ocikit` facade moves images between registries, layouts and archives alike.
//!
//! ```no_run
//! use ocikit_distribution::{Client, Reference};
//! use ocikit_image::{ImageSource, host_platform};
//!
//! let client = Client::builder().build()?;
//! let reference: Reference = "localhost:5000/library/busybox:latest".parse()?;
//! let repo = client.repository(&reference);
//! let image = repo.fetch_image(reference.target(), &host_platform())?;
//! for layer in image.manifest.layers() {
//!     let mut blob = repo.get_blob(layer)?; // verified as it streams
//!     std::io::copy(&mut blob, &mut std::io::sink())?;
//! }
//! # Ok::<_, ocikit_distribution::Error>(())
//! ```
//!
//! # Features
//! - [`Reference`]: references with docker's normalisation (`docker.io`, `library/`,
//!   `latest`), ports, digests, `localhost`.
//! - [`ClientBuilder`]: plain HTTP hosts (loopback by default), insecure hosts and TLS
//!   verification (as registries.conf's `insecure` and skopeo's `--tls-verify`), timeouts,
//!   [`RetryPolicy`] (exponential backoff with jitter, `Retry-After`), chunk size, user
//!   agent, proxies from the environment or given. One HTTP stack, ureq (rustls), for every
//!   request; connections are reused.
//! - Trust: the system's CA store (rustls-native-certs: `$SSL_CERT_FILE`, the distribution's
//!   bundle), CAs given in code, and each registry's `certs.d/HOST[:PORT]/` directory
//!   (`*.crt` CAs, `*.cert`/`*.key` client certificates, containers-certs.d(5)) or a
//!   certificate directory given ([`ClientBuilder::cert_dir`], skopeo's `--cert-dir`). The
//!   system's store is read only when a certificate needs it (see
//!   [`ClientBuilder::ca_root_pem`]).
//! - [`RegistriesConf`]: containers-registries.conf(5) — the `[[registry]]` table of an image
//!   (longest prefix, `*.domain` wildcards), its mirrors in order then its location
//!   (`pull-from-mirror`, `mirror-by-digest-only`), `insecure`, `blocked`; parse errors name
//!   the file, line and column.
//! - Authentication: `WWW-Authenticate` challenges ([`parse_challenges`]), anonymous and
//!   credentialed bearer tokens cached per registry and scope until they expire, basic auth;
//!   credentials given directly or found in docker `config.json` / containers `auth.json`
//!   (`auths`, `identitytoken`, `credHelpers`, `credsStore`), see [`default_auth_files`].
//! - [`Repository`]: ping, manifests (GET verified against the reference's digest or
//!   `Docker-Content-Digest`, HEAD, PUT reading `OCI-Subject`), blobs (GET as a verifying
//!   stream that resumes with `Range` after a dropped connection; push with an existence
//!   check, monolithic (`POST` then `PUT`, or one `POST` for bytes in memory) or chunked
//!   (`PATCH` with `Content-Range`) by size, cross-repository mount), tags with `Link` paging,
//!   catalog, referrers (API, or the referrers tag schema when the registry has no API),
//!   deletion.
//! - Feature `server` (off by default): `RegistryServer`, an embedded registry serving OCI
//!   layouts over the same API, for tests and small deployments (see its docs).
//! - Registry errors decoded into [`ErrorCode`]s, HTTP status kept ([`Error::Registry`]);
//!   authentication failures typed ([`Error::Auth`]).
//!
//! # Non-goals
//! - No async API, no HTTP/2.
//! - Docker schema 1 manifests are refused (see `ocikit_image`).
//! - The OAuth2 password grant (`POST` of a user name and password to the token realm) is not
//!   used: passwords go to the realm by `GET` with basic auth, as docker does; identity
//!   (refresh) tokens are exchanged by `POST`.
//! - Uploads are not resumed after a dropped connection (the source stream cannot be
//!   rewound); downloads are.
//!
//! # Performance: cap `log` in your binary
//! ureq-proto (under ureq) checks whether `trace` logging is on once for every 16 bytes of
//! every request and response body. Unless the level is capped at compile time, that check
//! alone took 4% of the CPU of a 107 MiB pull over TLS here. A program that does not need
//! ureq's trace output (a hex dump of the bodies) should cap it in its own `Cargo.toml`, as
//! the `ocikit` command does (it installs no logger, so it compiles every level out):
//!
//! ```toml
//! log = { version = "0.4", features = ["release_max_level_off"] } # or release_max_level_debug
//! ```
//!
//! A library cannot set this for its users: the feature applies to the whole program.
//!
//! # Security
//! Registries are untrusted. Every blob is verified as it streams (digest and size) and a
//! failure surfaces as an error at the latest on the read that would end the stream; callers
//! must not use bytes before that. Manifests are capped (4 MiB by default) and verified
//! before they are parsed. Uploads are verified on our side before the final `PUT` of a
//! chunked upload, and by the registry on every final `PUT`. Plain HTTP is used only for
//! loopback hosts (without a certificate directory) and hosts explicitly listed or
//! insecure. Credentials are sent only to the registry they
//! belong to and to the token realm it names, never to a plain-HTTP realm of a TLS registry;
//! `Authorization` is dropped on redirects (blob storage). `Debug` of [`Credentials`] does
//! not show the password.

mod auth;
mod blob;
mod client;
mod config;
mod error;
#[cfg(feature = "server")]
mod http1;
mod reference;
mod registries;
mod repository;
#[cfg(feature = "server")]
mod server;
mod tls;

pub use auth::{
    Challenge, Credentials, credential_helper, default_auth_files, lookup_auth_file,
    parse_challenges, primary_auth_file, remove_auth_file_credentials, store_auth_file_credentials,
};
pub use blob::{BlobCopy, BlobStream};
pub use client::Client;
pub use config::{ClientBuilder, RetryPolicy, default_certs_d};
pub use error::{AuthErrorKind, Error, ErrorCode, RegistryError, Result};
pub use oci_spec;
pub use ocikit_image;
pub use reference::Reference;
pub use registries::{Endpoint, Mirror, PullFromMirror, RegistriesConf, RegistryEntry};
pub use repository::{MANIFEST_ACCEPT, RawManifest, Repository};
/// Serves bytes as one client's connection to a stand-in handler (for the fuzz target).
#[cfg(feature = "server")]
#[doc(hidden)]
pub use server::fuzz_connection;
#[cfg(feature = "server")]
pub use server::{Htpasswd, RegistryServer, ServerHandle};
