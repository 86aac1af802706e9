//! Host processes of instances: liveness by pid and start time, signals, waiting.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How often waits poll.
const POLL: Duration = Duration::from_millis(20);

/// State letter and start time of a process, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 (starttime) is at index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

pub fn start_ticks(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is still the process that started at `start_ticks` and has not exited. A
/// zombie that is our own child is reaped on the way.
pub fn is_alive(pid: u32, start_ticks: u64) -> bool {
    match stat(pid) {
        Some(('Z' | 'X', _)) => {
            reap(pid);
            false
        }
        Some((_, start)) => start == start_ticks,
        None => false,
    }
}

/// Collects the exit status of `pid` if it is our exited child (no-op otherwise).
pub fn reap(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG only reads the pid and writes the status integer.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// Sends `signal` to `pid` (a vanished process is fine).
pub fn signal(pid: u32, signal: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) has no memory effects.
    unsafe { libc::kill(pid, signal) };
}

/// Waits until `done` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL);
    }
}
