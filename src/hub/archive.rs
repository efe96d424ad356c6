//! Zip archives of model folders, through the maintained `zip` crate: read stored or deflated
//! entries (what desktop tools and `shutil.make_archive` write), write a saved model (weights
//! stored, since safetensors hardly compress; small text files deflated).

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::error::Error;
use crate::math::human_bytes;

/// The entries of a zip archive as (path, bytes); folders are skipped. What the entries inflate
/// to is bounded like a download ([`super::MAX_FILE_BYTES`] in all): a small archive that
/// inflates to gigabytes (a "zip bomb", or a damaged one) is refused, not read into memory.
pub fn read_zip(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Error> {
    read_zip_within(bytes, super::MAX_FILE_BYTES)
}

/// [`read_zip`] with at most `limit` bytes inflated in all.
pub fn read_zip_within(bytes: &[u8], limit: u64) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let bad = |e: zip::result::ZipError| match e {
        zip::result::ZipError::UnsupportedArchive(what) => Error::files(format!(
            "the zip uses a feature Tunelab cannot read ({what}): zip the folder again without \
             encryption, with deflate or no compression"
        )),
        other => Error::files(format!("not a readable zip file: {other}")),
    };
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(bad)?;
    let mut files = Vec::with_capacity(archive.len().min(4096));
    let mut left = limit;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad)?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(bad)?.to_string();
        // The declared size is only a hint: a damaged archive may claim anything.
        let mut data = Vec::with_capacity((entry.size().min(left) as usize).min(bytes.len() * 4));
        (&mut entry)
            .take(left + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::files(format!("{name} in the zip cannot be read: {e}")))?;
        if data.len() as u64 > left {
            return Err(Error::files(format!(
                "the zip inflates past {} (at {name}): too large for this browser",
                human_bytes(limit as f64)
            )));
        }
        left -= data.len() as u64;
        files.push((name, data));
    }
    Ok(files)
}

/// Writes `files` (path, bytes) as a zip archive.
pub fn write_zip(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, Error> {
    let fail = |e: &dyn std::fmt::Display| Error::files(format!("could not write the zip: {e}"));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        let method = if name.ends_with(".safetensors") {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(data.len() as u64 >= u32::MAX as u64);
        zip.start_file(name.as_str(), options)
            .map_err(|e| fail(&e))?;
        zip.write_all(data).map_err(|e| fail(&e))?;
    }
    Ok(zip.finish().map_err(|e| fail(&e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let files = vec![
            ("model/config.json".to_string(), b"{\"a\": 1}".to_vec()),
            (
                "model/model.safetensors".to_string(),
                (0..=255u8).cycle().take(70_000).collect(),
            ),
        ];
        let zip = write_zip(&files).unwrap();
        assert_eq!(read_zip(&zip).unwrap(), files);
        assert!(read_zip(&zip[..zip.len() / 2]).is_err());
        assert!(read_zip(b"hello").is_err());
    }

    #[test]
    fn an_archive_inflating_past_the_limit_is_refused_before_it_is_read_whole() {
        // 8 MB of zeros deflate to a few kB.
        let files = vec![("zeros.json".to_string(), vec![0u8; 8 << 20])];
        let zip = write_zip(&files).unwrap();
        assert!(zip.len() < 64 << 10, "{} bytes", zip.len());
        let err = read_zip_within(&zip, 1 << 20).unwrap_err().to_string();
        assert!(
            err.contains("the zip inflates past 1.0 MB (at zeros.json)"),
            "{err}"
        );
        assert_eq!(read_zip_within(&zip, 8 << 20).unwrap(), files);
    }
}
