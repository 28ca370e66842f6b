//! Parallel gzip: one valid gzip stream, compressed on several threads (as `pigz` does).
//!
//! The input is cut into blocks; each block is deflated on a worker with the previous block's
//! last 32 KiB as its dictionary and ends with a sync flush (a byte-aligned empty stored
//! block), so the compressed blocks concatenate into one deflate stream. The CRC-32 and length
//! for the trailer are computed on the calling thread as the bytes pass.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of input per block.
const BLOCK: usize = 1 << 20;
/// The deflate window: what a block may refer back to.
const DICT: usize = 32 * 1024;

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    done: SyncSender<io::Result<Vec<u8>>>,
}

/// A writer that gzips on `threads` worker threads into `inner`.
pub(crate) struct ParallelGzip<W: Write> {
    /// `None` only after `finish`.
    inner: Option<W>,
    level: Compression,
    crc: Crc,
    block: Vec<u8>,
    dict: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    header_written: bool,
}

impl<W: Write> ParallelGzip<W> {
    pub(crate) fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let level = Compression::new(level.min(9));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => match guard.recv() {
                                Ok(job) => job,
                                Err(_) => return,
                            },
                            Err(_) => return,
                        };
                        let out = deflate_block(level, &job.dict, &job.data, job.last);
                        // The receiver is gone only when the writer was dropped mid-way.
                        let _ = job.done.send(out);
                    }
                })
            })
            .collect();
        ParallelGzip {
            inner: Some(inner),
            level,
            crc: Crc::new(),
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            jobs: Some(tx),
            workers,
            pending: VecDeque::new(),
            max_pending: threads + 1,
            header_written: false,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // RFC 1952: magic, CM=8 (deflate), no flags, MTIME 0 (reproducible), XFL by level,
            // OS 255 (unknown), as `gzip -n` writes.
            let xfl = match self.level.level() {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            self.out()?
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        self.write_header()?;
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict_start = data.len().saturating_sub(DICT);
        let next_dict = data[dict_start..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        let (done, result) = sync_channel(1);
        let jobs = self.jobs.as_ref().expect("not finished");
        jobs.send(Job {
            dict,
            data,
            last,
            done,
        })
        .map_err(|_| io::Error::other("gzip worker stopped"))?;
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

    /// Compresses what is left, writes the trailer and gives the inner writer back.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out()?.write_all(&trailer)?;
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
        self.crc.update(&buf[..n]);
        if self.block.len() == BLOCK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn deflate_block(level: Compression, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(level, false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut consumed = 0;
    loop {
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(256 * 1024);
        }
        let before = c.total_in();
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        consumed += (c.total_in() - before) as usize;
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete when all input is in and the output did not fill up.
            _ if !last && consumed == data.len() && out.capacity() > out.len() => break,
            _ => {}
        }
    }
    Ok(out)
}
