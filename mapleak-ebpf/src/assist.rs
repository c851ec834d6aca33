//! Mark assists: `runtime.gcAssistAlloc(gp *g)`, which an allocating goroutine enters while the
//! GC marks and it owes scan work, and which returns only once the debt is paid (by stealing
//! background credit, by marking, or after being parked). A few hundred calls per GC cycle,
//! more while the GC CPU limiter is on; never per allocation.
//!
//! Entry and RETs are paired by the goroutine (R14), never by thread: the goroutine can yield,
//! park and resume on another thread in between. `gcMarkDone` and `gcParkAssist` run on the
//! same goroutine inside the assist, so their time is charged to the assist in flight there.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::map, maps::LruHashMap, programs::ProbeContext};
use mapleak_common::{AssistEvent, EventKind, ProbeId, probe::COUNTER_LOST};

use crate::{
    counters::{finish, hit},
    go::{GoRegs, StackTop, header, read, submit_with_frames},
    maps::config,
};

/// An assist in flight, by goroutine. LRU: a RET missed while the group was detached leaves an
/// entry that the next assist of that goroutine replaces, or that ages out.
#[map]
static ASSISTING: LruHashMap<u64, Assisting> = LruHashMap::with_max_entries(16384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct Assisting {
    start_ns: u64,
    /// Set while inside `gcMarkDone` / `gcParkAssist`; 0 otherwise.
    mark_done_since: u64,
    park_since: u64,
    mark_done_ns: u64,
    parked_ns: u64,
    limiter: u64,
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: plain helper call with no arguments.
    unsafe { bpf_ktime_get_ns() }
}

uprobe_program!(assist_alloc, assist_alloc_m, |ctx| {
    hit(ProbeId::AssistAlloc);
    finish(try_assist_alloc(&ctx))
});

#[inline(always)]
fn try_assist_alloc(ctx: &ProbeContext) -> Result<(), u32> {
    let regs = GoRegs::new(ctx);
    let g = regs.g();
    // gp is the caller itself for every goroutine's assist; a call made on g0 (a goroutine
    // allocated by the scheduler) returns at its first check and is nobody's assist.
    if regs.arg(0) != g {
        return Ok(());
    }
    let cfg = config();
    // The limiter is checked first thing: set now, the call returns without paying.
    let limiter = if cfg.limiter_enabled_addr == 0 {
        0
    } else {
        read::<u8>(cfg.limiter_enabled_addr, 0).unwrap_or(0)
    };
    let state = Assisting {
        start_ns: now(),
        mark_done_since: 0,
        park_since: 0,
        mark_done_ns: 0,
        parked_ns: 0,
        limiter: u64::from(limiter),
    };
    ASSISTING.insert(&g, &state, 0).map_err(|_| COUNTER_LOST)
}

uprobe_program!(
    /// At each RET (never a uretprobe: those corrupt Go's stack unwinding).
    assist_alloc_ret,
    assist_alloc_ret_m,
    |ctx| {
        hit(ProbeId::AssistAllocReturn);
        finish(try_assist_alloc_ret(&ctx))
    }
);

#[inline(always)]
fn try_assist_alloc_ret(ctx: &ProbeContext) -> Result<(), u32> {
    let regs = GoRegs::new(ctx);
    let g = regs.g();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(state) = (unsafe { ASSISTING.get(&g) }).copied() else {
        // Entered before the group was attached: its start is unknown.
        return Ok(());
    };
    let _ = ASSISTING.remove(&g);
    let event = AssistEvent {
        header: header(EventKind::Assist as u32),
        goroutine: g,
        duration_ns: now().saturating_sub(state.start_ns),
        mark_done_ns: state.mark_done_ns,
        parked_ns: state.parked_ns,
        limiter: state.limiter as u8,
        _pad: [0; 7],
        site: Default::default(),
    };
    submit_with_frames(event, &regs, StackTop::Ret)
}

/// Which nested span of an assist a probe opens or closes.
#[derive(Clone, Copy)]
enum Span {
    MarkDone,
    Park,
}

#[inline(always)]
fn open(ctx: &ProbeContext, span: Span) -> u32 {
    let g = GoRegs::new(ctx).g();
    if let Some(state) = ASSISTING.get_ptr_mut(&g) {
        let t = now();
        // SAFETY: a pointer from a successful lookup; only this goroutine's probes write it,
        // and a goroutine runs on one thread at a time.
        unsafe {
            match span {
                Span::MarkDone => (*state).mark_done_since = t,
                Span::Park => (*state).park_since = t,
            }
        }
    }
    0
}

#[inline(always)]
fn close(ctx: &ProbeContext, span: Span) -> u32 {
    let g = GoRegs::new(ctx).g();
    if let Some(state) = ASSISTING.get_ptr_mut(&g) {
        let t = now();
        // SAFETY: as in `open`.
        unsafe {
            let (since, total) = match span {
                Span::MarkDone => (&mut (*state).mark_done_since, &mut (*state).mark_done_ns),
                Span::Park => (&mut (*state).park_since, &mut (*state).parked_ns),
            };
            if *since != 0 {
                *total += t.saturating_sub(*since);
                *since = 0;
            }
        }
    }
    0
}

uprobe_program!(assist_mark_done, assist_mark_done_m, |ctx| {
    hit(ProbeId::AssistMarkDone);
    open(&ctx, Span::MarkDone)
});

uprobe_program!(assist_mark_done_ret, assist_mark_done_ret_m, |ctx| {
    hit(ProbeId::AssistMarkDoneReturn);
    close(&ctx, Span::MarkDone)
});

uprobe_program!(assist_park, assist_park_m, |ctx| {
    hit(ProbeId::AssistPark);
    open(&ctx, Span::Park)
});

uprobe_program!(assist_park_ret, assist_park_ret_m, |ctx| {
    hit(ProbeId::AssistParkReturn);
    close(&ctx, Span::Park)
});
