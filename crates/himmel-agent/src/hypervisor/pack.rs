//! Packing a namespace instance's root filesystem into a gzip-compressed newc cpio archive: the
//! instance's snapshot, which [`super::rootfs::unpack`] boots again.
//!
//! The tree belongs to a tenant and is read by root on the host, so no symlink is ever followed:
//! entries are looked at with `lstat`, files are opened with `O_NOFOLLOW` and must still be the
//! regular file `lstat` saw. The caller freezes the instance while packing, so nothing in the
//! tree changes underneath (which would also let a swapped parent directory point elsewhere).
//! Only what unpacking recreates is kept: directories, regular files and symlinks, with their
//! permission bits (no owners, no setuid/setgid); device nodes, fifos and sockets are left out.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use super::rootfs::{HEADER_LEN, S_IFDIR, S_IFLNK, S_IFREG, TRAILER};
use crate::error::{Error, Result};

/// Writes the tree under `root` as a gzip'd newc archive to `out` (created or truncated), with
/// at most `max_bytes` of file data: an initramfs must fit in the memory it is unpacked into.
/// What the tree itself makes impossible (too large, a name that is not UTF-8, a file changed
/// meanwhile) is [`Error::Invalid`], with files named as the instance sees them.
pub fn pack(root: &Path, out: &Path, max_bytes: u64) -> Result<()> {
    let file =
        File::create(out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    let mut gzip = Command::new("gzip")
        .args(["-c", "-6"])
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("starting gzip", e))?;
    let stdin = gzip
        .stdin
        .take()
        .ok_or_else(|| Error::invalid("gzip has no stdin"))?;
    let mut packer = Packer {
        out: BufWriter::with_capacity(256 * 1024, stdin),
        written: 0,
        budget: max_bytes,
        ino: 0,
    };
    let packed = packer.run(root);
    // Closing gzip's stdin lets it finish; on an error it is stopped instead.
    let flushed = packed.and_then(|()| {
        packer
            .out
            .into_inner()
            .map(drop)
            .map_err(|e| Error::io("writing the archive", e.into_error()))
    });
    if flushed.is_err() {
        let _ = gzip.kill();
    }
    let status = gzip.wait().map_err(|e| Error::io("waiting for gzip", e))?;
    flushed?;
    if !status.success() {
        return Err(Error::invalid(format!(
            "gzip failed writing {}",
            out.display()
        )));
    }
    File::open(out)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", out.display()), e))
}

struct Packer<W: Write> {
    out: W,
    /// Bytes of archive written so far (entries are padded to four bytes).
    written: u64,
    /// File data still allowed.
    budget: u64,
    /// The last inode number handed out: every entry gets its own, so no two are hard links.
    ino: u32,
}

impl<W: Write> Packer<W> {
    fn run(&mut self, root: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(root)
            .map_err(|e| Error::io(format!("reading {}", root.display()), e))?;
        if !meta.is_dir() {
            return Err(Error::invalid(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        self.header(".", S_IFDIR | (meta.mode() & 0o1777), meta.mtime(), 0)?;
        self.directory(root, "")?;
        self.header(TRAILER, 0, 0, 0)
    }

    /// Everything below `dir`, whose archive name is `prefix` ("" for the root), sorted by name
    /// so that the same tree always packs to the same archive.
    fn directory(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        names.sort();
        for name in names {
            let Some(name) = name.to_str() else {
                // newc names are bytes, but unpacking reads them as UTF-8: such a name would not
                // come back as it was.
                return Err(Error::invalid(format!(
                    "/{prefix} holds a name that is not UTF-8"
                )));
            };
            let path = dir.join(name);
            let archived = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = fs::symlink_metadata(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let perm = meta.mode() & 0o1777;
            let kind = meta.file_type();
            if kind.is_dir() {
                self.header(&archived, S_IFDIR | perm, meta.mtime(), 0)?;
                self.directory(&path, &archived)?;
            } else if kind.is_symlink() {
                let target = fs::read_link(&path)
                    .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                let target = target.as_os_str().as_encoded_bytes();
                self.header(
                    &archived,
                    S_IFLNK | 0o777,
                    meta.mtime(),
                    target.len() as u64,
                )?;
                self.data(target)?;
                self.pad()?;
            } else if kind.is_file() {
                self.file(&path, &archived, &meta, perm)?;
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, archived: &str, seen: &fs::Metadata, perm: u32) -> Result<()> {
        let ctx = |e: io::Error| Error::io(format!("reading {}", path.display()), e);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(ctx)?;
        let meta = file.metadata().map_err(ctx)?;
        if !meta.is_file() || meta.ino() != seen.ino() || meta.dev() != seen.dev() {
            return Err(changed(archived));
        }
        let size = meta.len();
        self.budget = self.budget.checked_sub(size).ok_or_else(|| {
            Error::invalid("the root filesystem is larger than the instance's memory")
        })?;
        if size > u64::from(u32::MAX) {
            return Err(Error::invalid(format!(
                "/{archived} is too large for an initramfs"
            )));
        }
        self.header(archived, S_IFREG | perm, meta.mtime(), size)?;
        let copied = io::copy(&mut file.take(size), &mut self.out).map_err(ctx)?;
        if copied != size {
            return Err(changed(archived));
        }
        self.written += size;
        self.pad()
    }

    fn header(&mut self, name: &str, mode: u32, mtime: i64, size: u64) -> Result<()> {
        self.ino += 1;
        let name_len = name.len() + 1;
        let fields = [
            if name == TRAILER { 0 } else { self.ino },
            mode,
            0, // uid
            0, // gid
            if mode & S_IFDIR == S_IFDIR { 2 } else { 1 },
            u32::try_from(mtime.max(0)).unwrap_or(u32::MAX),
            size as u32,
            0,
            0,
            0,
            0,
            name_len as u32,
            0, // check (unused by newc)
        ];
        let mut header = String::with_capacity(HEADER_LEN);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.data(header.as_bytes())?;
        self.data(name.as_bytes())?;
        self.data(&[0])?;
        self.pad()
    }

    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("writing the archive", e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let pad = (4 - self.written % 4) % 4;
        self.data(&[0; 3][..pad as usize])
    }
}

/// Errors name files as the instance sees them, not by their place on the host.
fn changed(archived: &str) -> Error {
    Error::invalid(format!("/{archived} changed while it was packed"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("etc/empty")).unwrap();
        fs::write(root.join("init"), b"#!/bin/sh\necho hello\n").unwrap();
        fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("etc/motd"), vec![b'x'; 70_001]).unwrap();
        fs::write(root.join("bin/odd"), b"abc").unwrap();
        symlink("../init", root.join("bin/sh")).unwrap();
        dir
    }

    #[test]
    fn a_packed_tree_unpacks_to_the_same_tree() {
        let src = tree();
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("root.cpio.gz");
        pack(src.path(), &archive, 1 << 20).unwrap();
        let dest = work.path().join("root");
        fs::create_dir(&dest).unwrap();
        super::super::rootfs::unpack(&archive, &dest, 1 << 20).unwrap();

        assert_eq!(
            fs::read(dest.join("init")).unwrap(),
            b"#!/bin/sh\necho hello\n"
        );
        let mode = fs::metadata(dest.join("init"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(fs::read(dest.join("etc/motd")).unwrap(), vec![b'x'; 70_001]);
        assert_eq!(fs::read(dest.join("bin/odd")).unwrap(), b"abc");
        assert!(dest.join("etc/empty").is_dir());
        assert_eq!(
            fs::read_link(dest.join("bin/sh")).unwrap(),
            Path::new("../init")
        );
    }

    #[test]
    fn symlinks_are_archived_not_followed() {
        let src = tree();
        let secret = tempfile::tempdir().unwrap();
        fs::write(secret.path().join("host-only"), b"host secret").unwrap();
        symlink(secret.path(), src.path().join("escape")).unwrap();
        symlink(
            secret.path().join("host-only"),
            src.path().join("file-escape"),
        )
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("root.cpio.gz");
        pack(src.path(), &archive, 1 << 20).unwrap();
        let plain = Command::new("gzip")
            .args(["-dc", "--"])
            .arg(&archive)
            .output()
            .unwrap()
            .stdout;
        assert!(!plain.windows(11).any(|w| w == b"host secret"));
    }

    #[test]
    fn the_size_is_capped() {
        let src = tree();
        let work = tempfile::tempdir().unwrap();
        let err = pack(src.path(), &work.path().join("a.gz"), 1000).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}
