//! Errors of the trace path. Each renders as one sentence that says what to do.

use crate::inspect::InspectError;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no process with pid {0} exists")]
    NoSuchProcess(u32),
    #[error("{tid} is a thread of process {tgid}: trace --pid {tgid}")]
    Thread { tid: u32, tgid: u32 },
    #[error("process {0} has exited: it is a zombie waiting for its parent to reap it")]
    Zombie(u32),
    #[error("pid {0} is a kernel thread, not a Go program")]
    KernelThread(u32),
    #[error("{0}")]
    Privileges(super::privileges::Missing),
    #[error("cannot inspect pid {pid}: {source}")]
    Inspect {
        pid: u32,
        #[source]
        source: InspectError,
    },
    #[error("this kernel lacks {feature}, which mapleak needs ({hint})")]
    KernelFeature {
        feature: &'static str,
        hint: &'static str,
    },
    #[error("cannot load mapleak's eBPF programs: {0}")]
    Load(String),
    #[error("cannot attach a probe to {symbol} in pid {pid}: {why}")]
    Attach {
        symbol: String,
        pid: u32,
        why: String,
    },
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    OutputFile(#[from] crate::report::file::OutputError),
    #[error("interrupted before any probe was attached: nothing was traced")]
    Interrupted,
    #[error(
        "pid {0} executed a new program while mapleak was starting: nothing was traced (run mapleak again)"
    )]
    ExecDuringStart(u32),
}
