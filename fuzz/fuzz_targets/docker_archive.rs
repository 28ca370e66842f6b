//! `docker save` archives (`manifest.json` and what it names): any bytes are an archive or
//! an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("ocikit-fuzz-docker-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("archive.tar");
    std::fs::write(&path, data).unwrap();
    if let Ok(a) = ocikit_layout::DockerArchive::open(&path) {
        let _ = a.find(None);
    }
});
