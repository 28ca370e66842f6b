//! The progress display: on a terminal, one line per blob moving (digest, bar, bytes, rate,
//! time left) and a line for the whole operation, drawn with `indicatif` from the library's
//! progress events; nothing at all when standard error is not a terminal or with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocikit::progress::{BlobId, Event};

/// Draws the events of one operation.
pub(crate) struct Display {
    multi: MultiProgress,
    total: ProgressBar,
    bars: Mutex<HashMap<BlobId, ProgressBar>>,
    /// What the blobs announced so far add up to (a copy of an index announces per image).
    announced: Mutex<(usize, u64)>,
    verb: &'static str,
}

/// Short digest, as skopeo prints it (`sha256:0123456789ab`).
fn short(descriptor: &ocikit::oci_spec::image::Descriptor) -> String {
    let d = descriptor.digest();
    let hex = d.digest();
    format!("{}:{}", d.algorithm(), &hex[..hex.len().min(12)])
}

impl Display {
    /// A display for an operation that `verb`s blobs ("Copying", "Unpacking"), or `None`
    /// when nothing should be drawn (quiet, or standard error is not a terminal).
    pub(crate) fn new(verb: &'static str, quiet: bool) -> Option<Arc<Display>> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>18} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        total.set_prefix("total");
        Some(Arc::new(Display {
            multi,
            total,
            bars: Mutex::new(HashMap::new()),
            announced: Mutex::new((0, 0)),
            verb,
        }))
    }

    fn blob_style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:>18} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> ")
    }

    /// Draws one event (called from the operation's threads).
    pub(crate) fn event(&self, event: &Event<'_>) {
        match *event {
            Event::Total { blobs, bytes } => {
                let mut a = self.announced.lock().unwrap_or_else(|e| e.into_inner());
                a.0 += blobs;
                a.1 += bytes;
                self.total.set_length(a.1);
                self.total.set_message(format!("{} blobs", a.0));
            }
            Event::Started { id, descriptor } => {
                let bar = self
                    .multi
                    .insert_before(&self.total, ProgressBar::new(descriptor.size()));
                bar.set_style(Self::blob_style());
                bar.set_prefix(short(descriptor));
                bar.set_message(self.verb);
                bar.enable_steady_tick(Duration::from_millis(200));
                let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
                // A blob started again (fetched from another place) starts from 0.
                if let Some(old) = bars.insert(id, bar) {
                    old.finish_and_clear();
                }
            }
            Event::Bytes { id, done, .. } => {
                let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(bar) = bars.get(&id) {
                    let before = bar.position();
                    bar.set_position(done);
                    self.total.inc(done.saturating_sub(before));
                }
            }
            Event::Done { id, descriptor } => self.finish(id, descriptor, "done".into()),
            Event::Skipped { id, descriptor } => {
                self.finish(id, descriptor, "already there".into())
            }
            Event::Mounted {
                id,
                descriptor,
                from,
            } => self.finish(id, descriptor, format!("mounted from {from}")),
            _ => {}
        }
    }

    /// Ends a blob's line with `message`; the total counts all of the blob.
    fn finish(
        &self,
        id: BlobId,
        descriptor: &ocikit::oci_spec::image::Descriptor,
        message: String,
    ) {
        let bar = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let size = descriptor.size();
        match bar {
            Some(bar) => {
                self.total.inc(size.saturating_sub(bar.position()));
                bar.set_position(size);
                bar.finish_with_message(message);
            }
            None => {
                // Skipped and mounted blobs never started: a finished line of their own.
                let bar = self
                    .multi
                    .insert_before(&self.total, ProgressBar::new(size));
                bar.set_style(Self::blob_style());
                bar.set_prefix(short(descriptor));
                bar.set_position(size);
                bar.finish_with_message(message);
                self.total.inc(size);
            }
        }
    }

    /// Ends the display with its summary line.
    pub(crate) fn finish_all(&self, summary: &str) {
        self.total.finish_with_message(summary.to_owned());
    }
}
