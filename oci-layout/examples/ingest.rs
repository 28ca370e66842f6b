//! Writes a file (or stdin) into a layout as a blob, as a stream: `ingest LAYOUT [FILE]`.
//! Used by `benches/ingest.sh`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let dir = args.next().ok_or("usage: ingest LAYOUT [FILE]")?;
    let layout = ocikit_layout::Layout::create(&dir)?;
    let start = Instant::now();
    let (digest, size) = match args.next() {
        Some(file) => layout.write_blob(std::fs::File::open(file)?, None, None)?,
        None => layout.write_blob(std::io::stdin().lock(), None, None)?,
    };
    println!("{digest} {size} {:.3}s", start.elapsed().as_secs_f64());
    Ok(())
}
