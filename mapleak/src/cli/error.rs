//! What ends a command before its work is done. Each error keeps its cause: `main` prints the
//! chain as one sentence (`cannot attach a probe to …: perf_event_open failed: …`).

pub use crate::trace::error_chain as chain;
use crate::{inspect::InspectError, trace::TraceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error("cannot take SIGINT and SIGTERM")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write to standard output")]
    Stdout(#[source] std::io::Error),
    #[error("cannot encode the JSON output")]
    Json(#[from] serde_json::Error),
    /// A sentence of mapleak's own (the processes a name matches, why a command ended before
    /// it could be traced, how the report's output failed): nothing beneath it.
    #[error("{0}")]
    Said(String),
}

impl From<String> for Error {
    fn from(sentence: String) -> Self {
        Self::Said(sentence)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn the_cause_is_kept_down_to_main_and_said_once() {
        let err = Error::from(TraceError::Inspect {
            pid: 7,
            source: InspectError::NotGo("/bin/true".into()),
        });
        let inspect = err.source().and_then(|e| e.downcast_ref::<InspectError>());
        assert!(matches!(inspect, Some(InspectError::NotGo(_))), "{err:?}");
        let said = chain(&err);
        assert!(said.starts_with("cannot inspect pid 7: "), "{said}");
        // Each cause once: a Display that repeated its source would print it twice here.
        assert_eq!(said.matches("/bin/true").count(), 1, "{said}");
    }
}
