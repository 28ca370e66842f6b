//! Layers recompressed on the way (skopeo's `copy --dest-compress-format`): each layer the
//! destination should hold in another compression is read from the source (its digest
//! verified), decompressed (the compression sniffed from its first bytes, and checked against
//! its media type), its `diff_id` checked against the image's config, and compressed again
//! into a temporary file, whose digest and size the new descriptor takes before the blob is
//! stored. Memory stays bounded: the layer streams through, the file holds it.

use std::io::{self, BufRead, BufReader, Read, Seek};

use ocikit_image::oci_spec::image::Descriptor;
use ocikit_image::{
    BuildOptions, Compression, ContentKind, ImageDestination, ImageSource, Manifest, MediaTypeExt,
    compress_layer,
};

use crate::copy::{BlobAction, BlobCopy};

/// The decompressed stream of a layer blob whose compression is sniffed from its first
/// bytes: gzip (`1f 8b`), zstd (`28 b5 2f fd`), else a plain tar. A blob whose bytes say
/// another compression than its media type is an error naming both.
fn decompressed<'a>(
    blob: impl Read + 'a,
    descriptor: &Descriptor,
) -> ocikit_image::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(1 << 20, blob);
    let head = buffered.fill_buf()?;
    let found = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let said = descriptor.media_type().compression();
    if said.is_some_and(|s| s != found) {
        return Err(ocikit_image::Error::Invalid {
            kind: ocikit_image::DocumentKind::Descriptor,
            field: "mediaType".into(),
            reason: format!(
                "layer {} is {found:?} but its media type {} says {said:?}",
                descriptor.digest(),
                descriptor.media_type()
            ),
        });
    }
    Ok(match found {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        _ => Box::new(buffered),
    })
}

/// The manifest's layers stored in `destination` with `compression` (the others as they
/// are, by the caller); returns the manifest with the new descriptors, and what was done for
/// each recompressed layer. Layers already in that compression, non-distributable layers and
/// blobs that are not layers are left alone.
pub(crate) fn recompress_layers(
    source: &dyn ImageSource,
    manifest: &Manifest,
    destination: &dyn ImageDestination,
    compression: Compression,
) -> ocikit_image::Result<(Vec<Descriptor>, Vec<BlobCopy>)> {
    let config = source.fetch_config(manifest)?;
    let diff_ids = config.rootfs().diff_ids().clone();
    let mut layers = Vec::new();
    let mut report = Vec::new();
    for (i, layer) in manifest.layers().iter().enumerate() {
        let wanted = match layer.media_type().kind() {
            ContentKind::Layer {
                compression: c,
                distributable: true,
            } => c != compression,
            _ => false,
        };
        if !wanted {
            layers.push(layer.clone());
            continue;
        }
        let expected = diff_ids
            .get(i)
            .ok_or_else(|| ocikit_image::Error::Invalid {
                kind: ocikit_image::DocumentKind::Config,
                field: "rootfs.diff_ids".into(),
                reason: format!("no diff_id for layer {i} of {}", manifest.digest()),
            })?;
        let mut tmp = tempfile::tempfile()?;
        let built = {
            let mut blob = source.open_blob(layer)?;
            let tar = decompressed(&mut blob, layer)?;
            let built = compress_layer(
                tar,
                io::BufWriter::new(&mut tmp),
                &BuildOptions::new().compression(compression),
            )?;
            // The source blob's digest is checked once it was read to its end.
            blob.finish()?;
            built
        };
        if built.diff_id.to_string() != *expected {
            return Err(ocikit_image::Error::Invalid {
                kind: ocikit_image::DocumentKind::Config,
                field: format!("rootfs.diff_ids[{i}]"),
                reason: format!(
                    "layer {} decompresses to {}, not to {expected}",
                    layer.digest(),
                    built.diff_id
                ),
            });
        }
        let mut descriptor = built.descriptor;
        if let Some(a) = layer.annotations() {
            descriptor.set_annotations(Some(a.clone()));
        }
        let action = if destination.has_blob(&descriptor)? {
            BlobAction::Skipped
        } else {
            tmp.seek(io::SeekFrom::Start(0))?;
            destination.put_blob(&descriptor, &mut tmp)?;
            BlobAction::Copied
        };
        report.push(BlobCopy {
            descriptor: descriptor.clone(),
            action,
        });
        layers.push(descriptor);
    }
    Ok((layers, report))
}
