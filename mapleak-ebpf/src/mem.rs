//! The target's memory-mapping system calls, from the `syscalls` tracepoints (there are no kprobes
//! on these kernels). The entry's arguments wait per thread for the exit's result, so that failed
//! calls are recognised and mmap's chosen address is known.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use mapleak_common::{
    EventKind, MEM_MADVISE, MEM_MMAP, MEM_MUNMAP, MemEvent, ProbeId, probe::COUNTER_LOST,
};

use crate::{
    counters::{count, hit},
    maps::{EVENTS, config, wakeup},
};

/// Offsets in `sys_enter_*` records: the arguments, 8 bytes each from 16.
const ARG0: usize = 16;
/// Offset of `ret` in `sys_exit_*` records.
const RET: usize = 16;

#[derive(Clone, Copy)]
struct Call {
    op: u8,
    args: [u64; 4],
}

/// Calls in flight, by thread. LRU: a thread killed mid-call must not leak an entry.
#[map]
static IN_FLIGHT: LruHashMap<u32, Call> = LruHashMap::with_max_entries(4096, 0);

/// `Some(tid)` when the current task belongs to the traced process.
#[inline(always)]
fn target_thread() -> Option<u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32 == config().target_tgid).then_some(pid_tgid as u32)
}

#[inline(always)]
fn enter(ctx: &TracePointContext, op: u8) -> u32 {
    let Some(tid) = target_thread() else { return 0 };
    let mut args = [0u64; 4];
    for (i, arg) in args.iter_mut().enumerate() {
        // SAFETY: syscall enter records carry six 8-byte arguments from offset 16.
        *arg = unsafe { ctx.read_at::<u64>(ARG0 + 8 * i) }.unwrap_or(0);
    }
    let _ = IN_FLIGHT.insert(&tid, &Call { op, args }, 0);
    0
}

#[inline(always)]
fn exit(ctx: &TracePointContext, probe: ProbeId) -> u32 {
    let Some(tid) = target_thread() else { return 0 };
    // SAFETY: the key is a plain u32; the value is copied out before removal.
    let Some(call) = (unsafe { IN_FLIGHT.get(&tid) }).copied() else {
        return 0;
    };
    let _ = IN_FLIGHT.remove(&tid);
    hit(probe);
    // SAFETY: syscall exit records carry `long ret` at offset 16.
    let ret = unsafe { ctx.read_at::<i64>(RET) }.unwrap_or(-1);
    let [addr, len, third, fourth] = call.args;
    let event = MemEvent {
        header: crate::go::header_for(EventKind::Mem as u32, tid),
        addr: if call.op == MEM_MMAP && ret >= 0 {
            ret as u64
        } else {
            addr
        },
        len,
        ret,
        prot: third as u32,
        flags: fourth as u32,
        op: call.op,
        _pad: [0; 7],
    };
    match EVENTS.reserve::<MemEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(wakeup());
        }
        None => count(COUNTER_LOST),
    }
    0
}

#[tracepoint]
pub fn mem_enter_mmap(ctx: TracePointContext) -> u32 {
    enter(&ctx, MEM_MMAP)
}

#[tracepoint]
pub fn mem_exit_mmap(ctx: TracePointContext) -> u32 {
    exit(&ctx, ProbeId::Mmap)
}

#[tracepoint]
pub fn mem_enter_munmap(ctx: TracePointContext) -> u32 {
    enter(&ctx, MEM_MUNMAP)
}

#[tracepoint]
pub fn mem_exit_munmap(ctx: TracePointContext) -> u32 {
    exit(&ctx, ProbeId::Munmap)
}

#[tracepoint]
pub fn mem_enter_madvise(ctx: TracePointContext) -> u32 {
    enter(&ctx, MEM_MADVISE)
}

#[tracepoint]
pub fn mem_exit_madvise(ctx: TracePointContext) -> u32 {
    exit(&ctx, ProbeId::Madvise)
}
