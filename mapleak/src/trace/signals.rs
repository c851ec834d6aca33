//! The signals that end a trace with its report. `main` holds them (blocked, so they wait) from
//! its first instruction; a trace looks for one just before it attaches (then nothing is
//! attached and mapleak says so in one sentence) and takes them over once its probes are in
//! (then the trace ends at once, with its report).

use tokio::signal::unix::{Signal, SignalKind, signal};

pub struct Stops {
    pub interrupt: Signal,
    pub terminate: Signal,
}

/// Blocks SIGINT and SIGTERM: one that arrives stays pending until [`release`].
pub fn hold() {
    mask(libc::SIG_BLOCK);
}

/// Unblocks SIGINT and SIGTERM; a pending one is delivered now.
pub fn release() {
    mask(libc::SIG_UNBLOCK);
}

/// Whether a SIGINT or SIGTERM arrived while held.
pub fn arrived() -> bool {
    // SAFETY: sigpending fills the set we own; sigismember only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigpending(&mut set) == 0
            && (libc::sigismember(&set, libc::SIGINT) == 1
                || libc::sigismember(&set, libc::SIGTERM) == 1)
    }
}

fn mask(how: libc::c_int) {
    // SAFETY: a sigset_t is plain data that sigemptyset initialises; sigprocmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigprocmask(how, &set, std::ptr::null_mut());
    }
}

impl Stops {
    /// Takes SIGINT and SIGTERM over, then lets through any that arrived while they were held.
    pub fn install() -> std::io::Result<Self> {
        let stops = Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        };
        release();
        Ok(stops)
    }
}
