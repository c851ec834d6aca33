//! The traced process replacing its image (`execve`): every probe was planned for the old image,
//! so user space ends the trace the moment it reads this record. Records the ring holds after
//! it (the new image's system calls) are not the traced program's.

use aya_ebpf::{
    bindings::BPF_RB_FORCE_WAKEUP, helpers::bpf_get_current_pid_tgid, macros::tracepoint,
    programs::TracePointContext,
};
use mapleak_common::{EventKind, ExecEvent, ProbeId, probe::COUNTER_LOST};

use crate::{
    counters::{count, hit},
    go::header_for,
    maps::{EVENTS, config},
};

#[tracepoint]
pub fn proc_exec(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != config().target_tgid {
        return 0;
    }
    // Never switched off: tracepoints and the calibration stay attached.
    let _ = hit(ProbeId::Exec);
    let event = ExecEvent {
        header: header_for(EventKind::Exec as u32, pid_tgid as u32),
    };
    match EVENTS.reserve::<ExecEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            // Rare and urgent: the reader must not wait for its drain timer.
            entry.submit(BPF_RB_FORCE_WAKEUP.into());
        }
        None => count(COUNTER_LOST),
    }
    0
}
