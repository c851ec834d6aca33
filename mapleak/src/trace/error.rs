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
    #[error("cannot inspect pid {pid}")]
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
    #[error("cannot load mapleak's eBPF programs")]
    Load(#[source] Box<aya::EbpfError>),
    #[error(
        "cannot load mapleak's eBPF programs: the target's {0} lies where mapleak's growth probes do not read it"
    )]
    UnreadableField(&'static str),
    #[error(
        "cannot load mapleak's eBPF programs: this mapleak was built without its eBPF object (AYA_BUILD_SKIP)"
    )]
    NoObject,
    #[error("cannot load mapleak's eBPF programs: the eBPF object has no {0}")]
    Missing(String),
    #[error("cannot attach a probe to {symbol} in pid {pid}")]
    Attach {
        symbol: String,
        pid: u32,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("cannot write the report")]
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
