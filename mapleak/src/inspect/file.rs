//! An executable on disk, mapped rather than read: a Go binary can be hundreds of megabytes, and
//! inspection touches only the sections it needs.

use std::{
    fs::File,
    io,
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt},
};

use super::InspectError;

pub struct MappedFile {
    file: File,
    /// `None` for an empty file, which cannot be mapped.
    map: Option<memmap2::Mmap>,
    pub dev: u64,
    pub ino: u64,
}

impl MappedFile {
    /// Opens and maps `path`, which must be a regular file: a FIFO would block, a device
    /// (`/dev/zero`) never ends, and neither is an executable.
    pub fn open(path: &str) -> Result<Self, InspectError> {
        let io_error = |source: io::Error| InspectError::Io {
            path: path.to_owned(),
            source,
        };
        // O_NONBLOCK: opening a FIFO for reading must not wait for a writer before the type
        // check below refuses it.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io_error)?;
        let meta = file.metadata().map_err(io_error)?;
        let kind = meta.file_type();
        if !kind.is_file() {
            let what = if kind.is_dir() {
                "a directory"
            } else if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_socket() {
                "a socket"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else {
                "not a regular file"
            };
            return Err(InspectError::NotAFile {
                path: path.to_owned(),
                what,
            });
        }
        let map = if meta.len() == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and private. Executables are not rewritten in
            // place (the linker and package managers write a new file and rename it); a file
            // truncated under us would fault, which no inspection of it could survive either.
            Some(unsafe { memmap2::Mmap::map(&file) }.map_err(io_error)?)
        };
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            file,
            map,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        for (path, what) in [("/dev/zero", "a device"), ("/", "a directory")] {
            match MappedFile::open(path) {
                Err(InspectError::NotAFile { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{path}: {:?}", other.err()),
            }
        }
    }

    #[test]
    fn refuses_a_fifo_without_waiting_for_a_writer() {
        let dir = std::env::temp_dir().join(format!("mapleak-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let c = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo takes a NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let got = MappedFile::open(dir.to_str().unwrap());
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(
            got,
            Err(InspectError::NotAFile { what: "a FIFO", .. })
        ));
    }

    #[test]
    fn maps_an_empty_file_as_no_bytes() {
        let path = std::env::temp_dir().join(format!("mapleak-empty-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let f = MappedFile::open(path.to_str().unwrap()).unwrap();
        assert!(f.bytes().is_empty());
        std::fs::remove_file(&path).unwrap();
    }
}
