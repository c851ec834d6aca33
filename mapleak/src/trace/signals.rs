//! The signals that end a trace with its report. Installed before anything else, so that a
//! Ctrl-C during start-up is held until the probes are either attached (then the trace ends at
//! once, with its report) or not yet (then nothing is attached and mapleak says so).

use std::task::{Context, Poll, Waker};

use tokio::signal::unix::{Signal, SignalKind, signal};

pub struct Stops {
    pub interrupt: Signal,
    pub terminate: Signal,
}

impl Stops {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Whether a stop signal has arrived, without waiting for one.
    pub fn pending(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        [&mut self.interrupt, &mut self.terminate]
            .into_iter()
            .any(|s| matches!(s.poll_recv(&mut cx), Poll::Ready(Some(()))))
    }
}
