//! `mapleak trace`: load the kernel programs, attach them to one Go process, stream events into
//! the aggregator, report, and detach everything on the way out.

pub mod bias;
pub mod calibrate;
pub mod duty;
pub mod error;
pub mod governor;
pub mod launch;
pub mod live;
pub mod loader;
pub mod privileges;
pub mod ratio;
pub mod sampler;
pub mod session;
pub mod signals;
pub mod stacks;
pub mod target;
pub mod work;

pub use error::TraceError;
pub use session::{Outcome, TraceOptions, run};

/// A line for the person at the terminal, on stderr. A closed or full stderr must not end a
/// trace (the report may be going to a file), so a failed write is dropped.
pub fn say(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "mapleak: {message}");
}

/// Registers a descriptor with the event loop, for readiness to read.
pub(crate) fn register<T: std::os::fd::AsRawFd>(
    inner: T,
) -> std::io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `inner` owns or borrows an fd that stays open for as long as the AsyncFd holds it.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into())
}
