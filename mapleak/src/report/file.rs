//! `--output FILE`: the report goes to a new file beside FILE and replaces it only when the trace
//! ends, so that a trace that fails to start leaves an earlier report intact, and a name planted
//! by another user (a symbolic link in a shared directory) is never followed.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Why the report file cannot be written; each renders as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "refusing to write the report through {0}: it is a symbolic link owned by another user"
    )]
    ForeignSymlink(PathBuf),
    #[error("cannot write the report to {0}: it is a directory")]
    Directory(PathBuf),
    #[error("cannot write the report to {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where a report is being written.
pub struct ReportFile {
    /// The name the report ends under.
    target: PathBuf,
    /// The file written meanwhile; `None` when writing to `target` directly (a device or a FIFO,
    /// which cannot be replaced).
    temp: Option<PathBuf>,
    file: Option<File>,
}

impl ReportFile {
    /// Creates the file the report is written to until [`ReportFile::commit`].
    pub fn create(path: &Path) -> Result<Self, OutputError> {
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| OutputError::Io { path, source }
        };
        let target = resolve(path)?;
        let existing = match fs::metadata(&target) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&target)(e)),
        };
        if let Some(meta) = &existing {
            if meta.is_dir() {
                return Err(OutputError::Directory(target));
            }
            if !meta.is_file() {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .map_err(io_error(&target))?;
                return Ok(Self {
                    target,
                    temp: None,
                    file: Some(file),
                });
            }
        }
        let (temp, file) = create_beside(&target).map_err(io_error(&target))?;
        if let Some(meta) = &existing {
            // The report takes the place of the old file, as whoever could read that expects.
            let keep = file
                .set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
                .and_then(|()| {
                    std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
                });
            if let Err(e) = keep
                && e.kind() != io::ErrorKind::PermissionDenied
            {
                let _ = fs::remove_file(&temp);
                return Err(io_error(&target)(e));
            }
        }
        Ok(Self {
            target,
            temp: Some(temp),
            file: Some(file),
        })
    }

    /// The file to write the report into.
    pub fn writer(&mut self) -> io::Result<File> {
        match &self.file {
            Some(f) => f.try_clone(),
            None => Err(io::Error::other("the report file is already closed")),
        }
    }

    /// Puts the report in place under its name.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        drop(file);
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        fs::rename(&temp, &self.target).map_err(|source| {
            let _ = fs::remove_file(&temp);
            OutputError::Io {
                path: self.target.clone(),
                source,
            }
        })
    }
}

impl Drop for ReportFile {
    /// Not committed: the old file stays as it was.
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

/// `path`, or where it points when it is a symbolic link owned by this user (or by root, who
/// owns the links a system sets up). Any other link is refused rather than followed: in a
/// world-writable directory it may have been planted to redirect the report over another file.
fn resolve(path: &Path) -> Result<PathBuf, OutputError> {
    resolve_bounded(path, 0)
}

fn resolve_bounded(path: &Path, depth: u32) -> Result<PathBuf, OutputError> {
    const MAX_LINKS: u32 = 40;
    if depth >= MAX_LINKS {
        return Err(OutputError::Io {
            path: path.to_owned(),
            source: io::Error::from_raw_os_error(libc::ELOOP),
        });
    }
    // One link at a time, each checked the same way.
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            // SAFETY: geteuid has no preconditions.
            let euid = unsafe { libc::geteuid() };
            if meta.uid() != euid && meta.uid() != 0 {
                return Err(OutputError::ForeignSymlink(path.to_owned()));
            }
            let link = fs::read_link(path).map_err(|source| OutputError::Io {
                path: path.to_owned(),
                source,
            })?;
            let next = match path.parent() {
                Some(dir) if link.is_relative() => dir.join(link),
                _ => link,
            };
            resolve_bounded(&next, depth + 1)
        }
        _ => Ok(path.to_owned()),
    }
}

/// A new file in `target`'s directory, readable by its owner only, under a name nobody else can
/// have made first (`O_EXCL`, and `O_NOFOLLOW` for good measure).
fn create_beside(target: &Path) -> io::Result<(PathBuf, File)> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let mut last = None;
    for attempt in 0..100u32 {
        let temp = dir.join(format!(".{name}.mapleak-{}-{attempt}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mapleak-out-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_uncommitted_report_leaves_the_old_file_alone() {
        let dir = scratch("keep");
        let target = dir.join("report.json");
        fs::write(&target, "old report").unwrap();
        let mut out = ReportFile::create(&target).unwrap();
        out.writer().unwrap().write_all(b"partial").unwrap();
        drop(out);
        assert_eq!(fs::read_to_string(&target).unwrap(), "old report");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_committed_report_replaces_the_file_and_a_new_one_is_private() {
        let dir = scratch("commit");
        let target = dir.join("new.json");
        let mut out = ReportFile::create(&target).unwrap();
        out.writer().unwrap().write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);

        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let mut out = ReportFile::create(&target).unwrap();
        out.writer().unwrap().write_all(b"newer").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "newer");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o644);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_of_another_user_is_refused_and_its_target_untouched() {
        let dir = scratch("symlink");
        let victim = dir.join("victim");
        fs::write(&victim, "precious").unwrap();
        let link = dir.join("report.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let c = std::ffi::CString::new(link.to_str().unwrap()).unwrap();
            // SAFETY: lchown takes a NUL-terminated path and ids.
            assert_eq!(unsafe { libc::lchown(c.as_ptr(), 65534, 65534) }, 0);
            assert!(matches!(
                ReportFile::create(&link),
                Err(OutputError::ForeignSymlink(_))
            ));
        } else {
            // Our own link is followed: the report lands in what it points at.
            let mut out = ReportFile::create(&link).unwrap();
            out.writer().unwrap().write_all(b"report").unwrap();
            out.commit().unwrap();
            assert!(
                fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(fs::read_to_string(&victim).unwrap(), "report");
            fs::remove_dir_all(&dir).unwrap();
            return;
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_is_refused_and_a_device_is_written_in_place() {
        let dir = scratch("dir");
        assert!(matches!(
            ReportFile::create(&dir),
            Err(OutputError::Directory(_))
        ));
        let mut null = ReportFile::create(Path::new("/dev/null")).unwrap();
        null.writer().unwrap().write_all(b"x").unwrap();
        null.commit().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
