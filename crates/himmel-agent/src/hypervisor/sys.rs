//! Thin wrappers over the system calls the drivers need.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where `ip netns` keeps a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Opens a named network namespace (for setns in a child).
pub fn open_netns(name: &str) -> Result<File> {
    let path = netns_path(name);
    File::open(&path).map_err(|e| Error::io(format!("opening network namespace {name}"), e))
}

/// A pipe whose ends close on exec: (read, write).
pub fn pipe() -> Result<(File, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fds into the array, which we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(Error::io("creating a pipe", io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid(format!("{what} contains a NUL byte")))
}

pub fn path_cstring(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {} contains a NUL byte", path.display())))
}

/// In a child between fork and exec: a failed call as an io::Error.
pub fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Moves the calling process into network namespace `fd` (async-signal-safe: for pre_exec).
pub fn enter_netns(fd: i32) -> io::Result<()> {
    // SAFETY: setns only reads its arguments.
    check(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }.into())
}
