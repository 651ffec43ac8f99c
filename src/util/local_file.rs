//! Reading the small files sessiontop is pointed at (the config, a layout, a theme, a password,
//! a CA certificate), never more than a cap: a path to `/dev/zero` or a huge file by mistake is
//! one clear error, not a process that eats the machine's memory.

use std::io::Read;
use std::path::Path;

/// The most bytes of a password file (one line).
pub const PASSWORD_MAX_BYTES: u64 = 64 << 10;
/// The most bytes of a config, layout or theme file.
pub const TEXT_MAX_BYTES: u64 = 1 << 20;
/// The most bytes of a CA certificate file (bundles of many certificates are a few hundred KiB).
pub const CERTIFICATES_MAX_BYTES: u64 = 8 << 20;

/// Why a small file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LocalFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("larger than {}, which no such file is", crate::util::text::human_bytes(*.0))]
    TooLarge(u64),
    #[error("not UTF-8 text")]
    NotText,
}

/// Reads at most `max` bytes of `path`; a longer file is an error that says the cap.
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, LocalFileError> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(LocalFileError::TooLarge(max));
    }
    Ok(bytes)
}

/// Reads at most `max` bytes of `path` as UTF-8 text.
pub fn read_text(path: &Path, max: u64) -> Result<String, LocalFileError> {
    String::from_utf8(read(path, max)?).map_err(|_| LocalFileError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_oversized_files_are_refused() {
        let err = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(err.to_string(), "larger than 1.00 KiB, which no such file is");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\n").unwrap();
        assert_eq!(read_text(&path, 6).unwrap(), "hello\n");
        assert!(read(&path, 5).is_err());
        std::fs::write(&path, b"\xff").unwrap();
        assert_eq!(read_text(&path, 6).unwrap_err().to_string(), "not UTF-8 text");
    }
}
