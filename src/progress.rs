//! Progress of the operations that move blobs: one observer for copy, push and pull
//! ([`CopyOptions::progress`](crate::copy::CopyOptions::progress)), build
//! ([`BuildSpec::progress`](crate::build::BuildSpec::progress)), unpack
//! ([`UnpackOptions::progress`](crate::unpack::UnpackOptions::progress)), the store's pull
//! ([`PullOptions::progress`](crate::store::PullOptions::progress)) and the run path
//! ([`RunOptions::progress`](crate::run::RunOptions::progress)).
//!
//! An operation first says how much it will handle ([`Event::Total`]), then, per blob, under
//! an id of its own ([`BlobId`]): [`Event::Started`] when its bytes start to move,
//! [`Event::Bytes`] as the destination takes them, and exactly one of [`Event::Done`],
//! [`Event::Skipped`] or [`Event::Mounted`] when it succeeded. Copies run several blobs at
//! once, so events come from several threads: the observer is `Send + Sync`, and the ids keep
//! blobs apart (one progress bar per id, one for the total).
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use ocikit::progress::Event;
//!
//! let moved = Arc::new(AtomicU64::new(0));
//! let seen = moved.clone();
//! let observer = move |event: &Event<'_>| {
//!     if let Event::Done { descriptor, .. } = event {
//!         seen.fetch_add(descriptor.size(), Ordering::Relaxed);
//!     }
//! };
//! let options = ocikit::copy::CopyOptions::new().progress(observer);
//! # let _ = options;
//! ```

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ocikit_image::oci_spec::image::Descriptor;
use ocikit_image::{AnyManifest, BlobReader, ImageSource, TagOrDigest};

/// One blob's identity in the events of one process: unique even when two blobs have the
/// same digest (an image that lists a layer twice, two copies at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(u64);

impl BlobId {
    /// A new id, never given before in this process.
    pub(crate) fn next() -> BlobId {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        BlobId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number (unique in this process).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What an operation reports.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// What the operation will handle, before any blob: `blobs` blobs of `bytes` bytes in all
    /// (an image's config and layers for copy and build, its layers for unpack and pull).
    /// Each of them later gets exactly one of [`Done`](Event::Done),
    /// [`Skipped`](Event::Skipped) or [`Mounted`](Event::Mounted) unless the operation fails.
    /// A copy of an index says it for each image it copies (and for each other blob the
    /// index lists).
    Total {
        /// How many blobs.
        blobs: usize,
        /// Their sizes, summed.
        bytes: u64,
    },
    /// A blob's bytes start to move (its size is the descriptor's). A blob fetched again
    /// (from a registry's next place, after a verification failure) starts again, from 0.
    Started {
        /// The blob's id in these events.
        id: BlobId,
        /// The blob.
        descriptor: &'a Descriptor,
    },
    /// How many bytes of a blob the destination has taken so far (counted when it asks for
    /// more, so a buffer it is still writing is not counted yet).
    Bytes {
        /// The blob's id.
        id: BlobId,
        /// The blob.
        descriptor: &'a Descriptor,
        /// Bytes taken, from the start of the blob.
        done: u64,
    },
    /// The destination holds the whole blob, verified (copied, stored, unpacked).
    Done {
        /// The blob's id.
        id: BlobId,
        /// The blob.
        descriptor: &'a Descriptor,
    },
    /// Nothing to move: the destination had the blob already (or, for a copy, it is a
    /// non-distributable layer the source does not hold).
    Skipped {
        /// The blob's id.
        id: BlobId,
        /// The blob.
        descriptor: &'a Descriptor,
    },
    /// The registry mounted the blob from another repository: nothing was uploaded.
    Mounted {
        /// The blob's id.
        id: BlobId,
        /// The blob.
        descriptor: &'a Descriptor,
        /// The repository it was mounted from.
        from: &'a str,
    },
}

/// Receives the [`Event`]s of an operation, from any of its threads. Any
/// `Fn(&Event<'_>) + Send + Sync` closure is one.
pub trait Progress: Send + Sync {
    /// Called for each event, on the thread that caused it: keep it short (draw, count,
    /// send to a channel), the blob waits for it.
    fn event(&self, event: &Event<'_>);
}

impl<F: Fn(&Event<'_>) + Send + Sync> Progress for F {
    fn event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// A shared observer, as options hold it.
#[derive(Clone)]
pub(crate) struct Observer(pub(crate) Arc<dyn Progress>);

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl Observer {
    pub(crate) fn new(progress: impl Progress + 'static) -> Self {
        Observer(Arc::new(progress))
    }

    pub(crate) fn send(&self, event: Event<'_>) {
        self.0.event(&event)
    }

    /// Announces the total of `blobs`.
    pub(crate) fn total(&self, blobs: &[Descriptor]) {
        self.send(Event::Total {
            blobs: blobs.len(),
            bytes: blobs.iter().map(Descriptor::size).sum(),
        });
    }
}

/// Sends `event` when there is an observer.
pub(crate) fn send(observer: Option<&Observer>, event: Event<'_>) {
    if let Some(o) = observer {
        o.send(event)
    }
}

/// Counts the bytes a destination takes from a blob's stream: each read first reports what
/// the previous one gave (the destination came back for more, so it took it).
pub(crate) struct Counting<'o, R> {
    inner: R,
    id: BlobId,
    descriptor: Descriptor,
    observer: &'o Observer,
    taken: u64,
    pending: u64,
}

impl<'o, R> Counting<'o, R> {
    /// Wraps `inner`, the stream of `descriptor`, and says the blob [`Event::Started`].
    pub(crate) fn start(
        inner: R,
        id: BlobId,
        descriptor: &Descriptor,
        observer: &'o Observer,
    ) -> Self {
        observer.send(Event::Started { id, descriptor });
        Counting {
            inner,
            id,
            descriptor: descriptor.clone(),
            observer,
            taken: 0,
            pending: 0,
        }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending > 0 {
            self.taken += std::mem::take(&mut self.pending);
            self.observer.send(Event::Bytes {
                id: self.id,
                descriptor: &self.descriptor,
                done: self.taken,
            });
        }
        let n = self.inner.read(buf)?;
        self.pending = n as u64;
        Ok(n)
    }
}

/// A source whose blob streams report one blob's progress, under one id: a copy wraps its
/// source in one per blob.
pub(crate) struct Reporting<'a> {
    pub(crate) inner: &'a dyn ImageSource,
    pub(crate) id: BlobId,
    pub(crate) observer: &'a Observer,
}

impl ImageSource for Reporting<'_> {
    fn resolve(&self, reference: &TagOrDigest) -> ocikit_image::Result<Descriptor> {
        self.inner.resolve(reference)
    }

    fn open_blob_unverified(&self, d: &Descriptor) -> ocikit_image::Result<BlobReader<'_>> {
        let inner = self.inner.open_blob_unverified(d)?;
        Ok(Box::new(Counting::start(inner, self.id, d, self.observer)))
    }

    fn open_manifest_unverified(&self, d: &Descriptor) -> ocikit_image::Result<BlobReader<'_>> {
        self.inner.open_manifest_unverified(d)
    }

    fn resolve_manifest(
        &self,
        reference: &TagOrDigest,
    ) -> ocikit_image::Result<(Descriptor, AnyManifest)> {
        self.inner.resolve_manifest(reference)
    }

    fn max_document_size(&self) -> u64 {
        self.inner.max_document_size()
    }

    fn referrers(&self, subject: &Descriptor) -> ocikit_image::Result<Vec<Descriptor>> {
        self.inner.referrers(subject)
    }
}
