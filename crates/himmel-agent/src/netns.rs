//! Sockets inside named network namespaces, for services of the region that must answer inside
//! a tenant network (the metadata service in a network's DHCP namespace).
//!
//! A socket belongs to the namespace it was created in for its whole life, whatever thread
//! uses it later. So a short-lived thread enters the namespace (setns(2) changes only the
//! calling thread), binds, and hands the socket back; the caller's threads never move.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::link::NETNS_DIR;
use crate::names::check_netns;

/// Which namespace a name stands for now (device and inode of its bind mount). A namespace
/// deleted and created again under the same name is a different one, and sockets bound in the
/// old one no longer reach the new one. `None` when it does not exist.
pub fn identity(netns: &str) -> Option<(u64, u64)> {
    check_netns(netns).ok()?;
    let m = std::fs::metadata(Path::new(NETNS_DIR).join(netns)).ok()?;
    Some((m.dev(), m.ino()))
}

/// A non-blocking TCP listener on `addr` inside the named namespace.
pub fn bind_tcp(netns: &str, addr: SocketAddr) -> Result<TcpListener> {
    check_netns(netns)?;
    let path = Path::new(NETNS_DIR).join(netns);
    let what = format!("listening on {addr} in namespace {netns}");
    let file = File::open(&path).map_err(|e| Error::io(&what, e))?;
    let bound = std::thread::spawn(move || -> std::io::Result<TcpListener> {
        // SAFETY: setns(2) on a descriptor we own, for this thread only; the thread ends
        // right after binding, so no other work ever runs in the tenant's namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .join()
    .map_err(|_| Error::invalid(format!("{what}: the binding thread panicked")))?;
    bound.map_err(|e| Error::io(what, e))
}
