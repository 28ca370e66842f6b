//! Parallel gzip: a gzip stream compressed on several threads (as `pigz` and `bgzip` do).
//!
//! The input is cut into blocks of [`BLOCK`] bytes; each block is compressed on a worker by
//! libdeflate into a gzip member of its own, and the members are written in order. RFC 1952
//! ("A gzip file consists of a series of "members" (compressed data sets)") makes the
//! concatenation one valid gzip file; every reader of layers takes it (Go's `compress/gzip`
//! reads multistream by default, as do `gzip -d`, Python's `gzip`, flate2's `MultiGzDecoder`).
//! The output depends on the input and level only, not on the number of threads.
//!
//! Why members rather than one deflate stream: libdeflate compresses 1.4x–1.9x faster than
//! zlib-rs at a smaller size, but takes no preset dictionary and cannot sync-flush, so blocks
//! cannot share history. A block loses only the matches it could have found in the previous
//! block's last 32 KiB: at 1 MiB blocks the layers are 0.1%–0.3% larger than at 4 MiB, and
//! still smaller than `gzip -6`'s (measurements in the session note that chose this; the
//! README's benchmark rows give the build's speed and size).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor};

/// Bytes of input per gzip member.
pub(crate) const BLOCK: usize = 1 << 20;

struct Job {
    data: Vec<u8>,
    done: SyncSender<io::Result<Vec<u8>>>,
}

/// A writer that gzips on `threads` worker threads into `inner`.
pub(crate) struct ParallelGzip<W: Write> {
    /// `None` only after `finish`.
    inner: Option<W>,
    block: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    members: u64,
}

impl<W: Write> ParallelGzip<W> {
    /// `level`: libdeflate's, 1 (fastest) to 12 (smallest).
    pub(crate) fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let level = CompressionLvl::new(level.clamp(1, 12) as i32).unwrap_or_default();
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || {
                    let mut compressor = Compressor::new(level);
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => match guard.recv() {
                                Ok(job) => job,
                                Err(_) => break,
                            },
                            Err(_) => break,
                        };
                        let out = gzip_member(&mut compressor, &job.data);
                        // The receiver is gone only when the writer was dropped mid-way.
                        let _ = job.done.send(out);
                    }
                })
            })
            .collect();
        ParallelGzip {
            inner: Some(inner),
            block: Vec::with_capacity(BLOCK),
            jobs: Some(tx),
            workers,
            pending: VecDeque::new(),
            max_pending: threads + 1,
            members: 0,
        }
    }

    fn dispatch(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let (done, result) = sync_channel(1);
        let jobs = self.jobs.as_ref().expect("not finished");
        jobs.send(Job { data, done })
            .map_err(|_| io::Error::other("gzip worker stopped"))?;
        self.members += 1;
        self.pending.push_back(result);
        while self.pending.len() > self.max_pending {
            self.collect_one()?;
        }
        Ok(())
    }

    fn collect_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let bytes = rx
                .recv()
                .map_err(|_| io::Error::other("gzip worker stopped"))??;
            self.out()?.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Compresses what is left and gives the inner writer back. Empty input still makes one
    /// (empty) member: a gzip file has at least one.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if !self.block.is_empty() || self.members == 0 {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        self.stop();
        Ok(self.inner.take().expect("finish runs once"))
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))
    }

    fn stop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.block.len();
        let n = buf.len().min(room);
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One gzip member of `data`. libdeflate writes the header `gzip -n` writes (no name, MTIME
/// 0, OS 255): the bytes depend on the data and level only.
fn gzip_member(compressor: &mut Compressor, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; compressor.gzip_compress_bound(data.len())];
    let n = compressor
        .gzip_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("libdeflate: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), 6, threads);
        for chunk in data.chunks(7919) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn any_size_round_trips_and_threads_do_not_change_the_bytes() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345] {
            let data: Vec<u8> = (0..len)
                .map(|i| (i * 31 % 251) as u8 ^ (i / 4096) as u8)
                .collect();
            let one = gz(&data, 1);
            assert_eq!(gunzip(&one), data, "{len} bytes");
            assert_eq!(
                gz(&data, 3),
                one,
                "{len} bytes: the same for any number of threads"
            );
            assert_eq!(&one[..2], &[0x1f, 0x8b]);
            // MTIME 0: reproducible.
            assert_eq!(&one[4..8], &[0, 0, 0, 0]);
        }
    }
}
