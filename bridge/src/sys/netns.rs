//! Entering named network namespaces (`/run/netns/NAME`, as `ip netns` makes them).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where `ip netns` keeps a namespace's handle.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Moves the calling thread into network namespace `name`. Sockets created
/// afterwards belong to it; sockets created before stay where they were.
pub fn enter(name: &str) -> io::Result<()> {
    let handle = File::open(path(name))
        .map_err(|err| io::Error::new(err.kind(), format!("network namespace {name}: {err}")))?;
    enter_fd(&handle)
}

/// A handle on the calling thread's current network namespace, to return to.
pub fn current() -> io::Result<File> {
    File::open("/proc/thread-self/ns/net")
}

pub fn enter_fd(handle: &File) -> io::Result<()> {
    // SAFETY: setns(2) on a descriptor we own; it only changes this thread's
    // namespace.
    let result = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs `work` with the calling thread inside namespace `name`, then returns
/// the thread to where it was, also when `work` fails.
pub fn within<T>(name: &str, work: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let home = current()?;
    enter(name)?;
    let result = work();
    enter_fd(&home)?;
    result
}
