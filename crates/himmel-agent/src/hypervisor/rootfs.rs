//! Unpacking an initramfs (newc cpio, plain or gzip-compressed, possibly several archives one
//! after the other) into a directory: a namespace instance's root filesystem.
//!
//! The archive comes from a tenant's image and is unpacked by root on the host, so nothing in
//! it may reach outside the directory: `..` is refused, no path is followed through a symlink
//! (each parent must be a real directory), device nodes are skipped, setuid/setgid bits are
//! dropped and the total size is capped.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

pub(super) const HEADER_LEN: usize = 110;
pub(super) const TRAILER: &str = "TRAILER!!!";
const MAX_NAME: usize = 4096;

const S_IFMT: u32 = 0o170_000;
pub(super) const S_IFDIR: u32 = 0o040_000;
pub(super) const S_IFREG: u32 = 0o100_000;
pub(super) const S_IFLNK: u32 = 0o120_000;

/// Unpacks `archive` into `dest` (which must exist), writing at most `max_bytes` of file data.
pub fn unpack(archive: &Path, dest: &Path, max_bytes: u64) -> Result<()> {
    let ctx = |e: io::Error| Error::io(format!("unpacking {}", archive.display()), e);
    let mut magic = [0u8; 2];
    File::open(archive)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(ctx)?;
    if magic == [0x1f, 0x8b] {
        let mut child = Command::new("gzip")
            .args(["-dc", "--"])
            .arg(archive)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("starting gzip", e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::invalid("gzip has no stdout"))?;
        let result = Unpacker::new(dest, max_bytes).run(BufReader::new(stdout));
        // On an early error gzip may still be writing: stop it before waiting.
        if result.is_err() {
            let _ = child.kill();
        }
        let status = child.wait().map_err(|e| Error::io("waiting for gzip", e))?;
        result?;
        if !status.success() {
            return Err(Error::invalid(format!(
                "{} is not valid gzip",
                archive.display()
            )));
        }
        Ok(())
    } else {
        let file = File::open(archive).map_err(ctx)?;
        Unpacker::new(dest, max_bytes).run(BufReader::new(file))
    }
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    namesize: u32,
}

struct Unpacker<'a> {
    dest: &'a Path,
    budget: u64,
    /// Hard links whose data comes with a later entry of the same inode (newc puts it last).
    pending_links: HashMap<u32, Vec<PathBuf>>,
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path, max_bytes: u64) -> Self {
        Unpacker {
            dest,
            budget: max_bytes,
            pending_links: HashMap::new(),
        }
    }

    fn run(mut self, mut input: impl Read) -> Result<()> {
        let bad = |msg: &str| Error::invalid(format!("initramfs: {msg}"));
        let io_err = |e: io::Error| Error::io("reading the initramfs", e);
        let mut offset: u64 = 0;
        let mut archives = 0;
        loop {
            // Between concatenated archives there may be zero padding.
            let mut header = [0u8; HEADER_LEN];
            let first = loop {
                let mut b = [0u8; 1];
                match input.read(&mut b).map_err(io_err)? {
                    0 => {
                        return if archives > 0 {
                            Ok(())
                        } else {
                            Err(bad("empty archive"))
                        };
                    }
                    _ if b[0] == 0 => offset += 1,
                    _ => break b[0],
                }
            };
            header[0] = first;
            input.read_exact(&mut header[1..]).map_err(io_err)?;
            offset += HEADER_LEN as u64;
            let h = parse_header(&header).ok_or_else(|| bad("not a newc cpio archive"))?;
            let namesize = h.namesize as usize;
            if namesize == 0 || namesize > MAX_NAME {
                return Err(bad("bad name length"));
            }
            let mut name = vec![0u8; namesize];
            input.read_exact(&mut name).map_err(io_err)?;
            offset += namesize as u64;
            skip(&mut input, pad4(offset)).map_err(io_err)?;
            offset += pad4(offset);
            let name = String::from_utf8_lossy(&name[..namesize - 1]).into_owned();
            if name == TRAILER {
                archives += 1;
                continue;
            }
            let size = u64::from(h.filesize);
            self.entry(&name, &h, &mut (&mut input).take(size))?;
            offset += size;
            skip(&mut input, pad4(offset)).map_err(io_err)?;
            offset += pad4(offset);
        }
    }

    fn entry(&mut self, name: &str, h: &Header, data: &mut impl Read) -> Result<()> {
        let Some(relative) = clean_path(name)? else {
            // "." (the root itself).
            return drain(data);
        };
        let path = self.prepare_parent(&relative)?;
        let perm = h.mode & 0o1777;
        match h.mode & S_IFMT {
            S_IFDIR => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => remove(&path)?,
                    Err(_) => {}
                }
                if !path.is_dir() {
                    fs::create_dir(&path)
                        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                }
                set_mode(&path, perm)
            }
            S_IFREG => {
                remove_existing(&path)?;
                if h.filesize == 0 && h.nlink > 1 {
                    self.pending_links
                        .entry(h.ino)
                        .or_default()
                        .push(path.clone());
                }
                self.write_file(&path, perm, data)?;
                if h.filesize > 0 {
                    for link in self.pending_links.remove(&h.ino).unwrap_or_default() {
                        remove_existing(&link)?;
                        fs::hard_link(&path, &link)
                            .map_err(|e| Error::io(format!("linking {}", link.display()), e))?;
                    }
                }
                Ok(())
            }
            S_IFLNK => {
                let mut target = Vec::new();
                data.take(MAX_NAME as u64)
                    .read_to_end(&mut target)
                    .map_err(|e| Error::io("reading a symlink", e))?;
                drain(data)?;
                remove_existing(&path)?;
                let target = String::from_utf8_lossy(&target).into_owned();
                symlink(&target, &path)
                    .map_err(|e| Error::io(format!("creating symlink {}", path.display()), e))
            }
            // Device nodes, fifos and sockets: the driver makes the few devices an instance gets.
            _ => drain(data),
        }
    }

    /// Makes sure every parent of `relative` is a real directory inside `dest` (creating the
    /// missing ones, never following a symlink); returns the full path.
    fn prepare_parent(&self, relative: &Path) -> Result<PathBuf> {
        let mut path = self.dest.to_path_buf();
        let parents: Vec<_> = relative.components().collect();
        for component in &parents[..parents.len() - 1] {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::invalid(format!(
                        "initramfs: {} goes through a non-directory",
                        relative.display()
                    )))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => fs::create_dir(&path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?,
                Err(e) => return Err(Error::io(format!("checking {}", path.display()), e)),
            }
        }
        path.push(parents[parents.len() - 1]);
        Ok(path)
    }

    fn write_file(&mut self, path: &Path, perm: u32, data: &mut impl Read) -> Result<()> {
        let ctx = |e: io::Error| Error::io(format!("writing {}", path.display()), e);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(path)
            .map_err(ctx)?;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = data
                .read(&mut buf)
                .map_err(|e| Error::io("reading the initramfs", e))?;
            if n == 0 {
                break;
            }
            self.budget = self.budget.checked_sub(n as u64).ok_or_else(|| {
                Error::invalid("initramfs: unpacked size exceeds the instance's memory")
            })?;
            file.write_all(&buf[..n]).map_err(ctx)?;
        }
        drop(file);
        set_mode(path, perm)
    }
}

fn parse_header(h: &[u8; HEADER_LEN]) -> Option<Header> {
    if &h[..5] != b"07070" || !matches!(h[5], b'1' | b'2') {
        return None;
    }
    let field = |i: usize| -> Option<u32> {
        let s = std::str::from_utf8(&h[6 + i * 8..6 + (i + 1) * 8]).ok()?;
        u32::from_str_radix(s, 16).ok()
    };
    Some(Header {
        ino: field(0)?,
        mode: field(1)?,
        nlink: field(4)?,
        filesize: field(6)?,
        namesize: field(11)?,
    })
}

/// The entry's path relative to the root, or None for the root itself; `..` is refused.
fn clean_path(name: &str) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::invalid(format!(
                    "initramfs: entry {name:?} leaves the root"
                )))
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

fn pad4(offset: u64) -> u64 {
    (4 - offset % 4) % 4
}

fn skip(input: &mut impl Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut input.take(n), &mut io::sink())?;
    if copied == n {
        Ok(())
    } else {
        Err(io::Error::new(
            ErrorKind::UnexpectedEof,
            "truncated archive",
        ))
    }
}

fn drain(data: &mut impl Read) -> Result<()> {
    io::copy(data, &mut io::sink())
        .map(|_| ())
        .map_err(|e| Error::io("reading the initramfs", e))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("setting the mode of {}", path.display()), e))
}

fn remove(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
    result.map_err(|e| Error::io(format!("replacing {}", path.display()), e))
}

/// Removes a non-directory at `path` (a later entry replaces an earlier one).
fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::invalid(format!(
            "initramfs: {} is both a directory and a file",
            path.display()
        ))),
        Ok(_) => remove(path),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, nlink: u32, data: &[u8]) {
        let namesize = name.len() + 1;
        out.extend_from_slice(b"070701");
        for v in [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ] {
            out.extend_from_slice(format!("{v:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    fn archive(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (name, mode, data)) in entries.iter().enumerate() {
            entry(&mut out, i as u32 + 1, name, *mode, 1, data);
        }
        entry(&mut out, 0, TRAILER, 0, 1, b"");
        out
    }

    fn unpack_bytes(bytes: &[u8], max: u64) -> (tempfile::TempDir, Result<()>) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.cpio");
        fs::write(&archive, bytes).unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let result = unpack(&archive, &root, max);
        (dir, result)
    }

    #[test]
    fn unpacks_files_dirs_links_and_concatenated_archives() {
        let mut bytes = archive(&[
            (".", S_IFDIR | 0o755, b""),
            ("bin", S_IFDIR | 0o755, b""),
            ("bin/busybox", S_IFREG | 0o4755, b"\x7fELF"),
            ("bin/sh", S_IFLNK | 0o777, b"busybox"),
            ("dev/console", 0o020_600, b""),
        ]);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend(archive(&[("init", S_IFREG | 0o755, b"#!/bin/sh\n")]));
        let (dir, result) = unpack_bytes(&bytes, 1 << 20);
        result.unwrap();
        let root = dir.path().join("root");
        assert_eq!(fs::read(root.join("bin/busybox")).unwrap(), b"\x7fELF");
        let mode = fs::metadata(root.join("bin/busybox"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "setuid is dropped");
        assert_eq!(
            fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert!(
            !root.join("dev/console").exists(),
            "device nodes are skipped"
        );
        assert_eq!(fs::read(root.join("init")).unwrap(), b"#!/bin/sh\n");
    }

    #[test]
    fn nothing_escapes_the_root() {
        let (_dir, result) = unpack_bytes(&archive(&[("../evil", S_IFREG | 0o644, b"x")]), 1 << 20);
        assert!(result.is_err());
        // A symlink pointing outside, then a file "through" it.
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().as_bytes().to_vec();
        let (_dir, result) = unpack_bytes(
            &archive(&[
                ("etc", S_IFLNK | 0o777, &target),
                ("etc/evil", S_IFREG | 0o644, b"x"),
            ]),
            1 << 20,
        );
        assert!(result.is_err());
        assert!(!outside.path().join("evil").exists());
    }

    #[test]
    fn the_size_is_capped() {
        let (_dir, result) =
            unpack_bytes(&archive(&[("big", S_IFREG | 0o644, &[7u8; 4096])]), 1000);
        assert!(result.is_err());
    }

    #[test]
    fn garbage_is_refused() {
        let (_dir, result) = unpack_bytes(
            b"this is not an archive at all, not even close.......",
            1 << 20,
        );
        assert!(result.is_err());
    }
}
