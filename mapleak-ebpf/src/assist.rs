//! Mark assists: `runtime.gcAssistAlloc(gp *g)`, which an allocating goroutine enters while the
//! GC marks and it owes scan work, and which returns only once the debt is paid (by stealing
//! background credit, by marking, or after being parked). A few hundred calls per GC cycle,
//! more while the GC CPU limiter is on; never per allocation.
//!
//! Entry and RETs are paired by the goroutine (R14), never by thread: the goroutine can yield,
//! park and resume on another thread in between. `gcMarkDone` and `gcParkAssist` run on the
//! same goroutine inside the assist, so their time is charged to the assist in flight there.
//! `gcAssistAlloc1` runs on the thread's system stack (R14 is g0), is passed the goroutine, and
//! cannot move to another thread: its entry finds the assist by its argument and leaves the
//! goroutine for its RET under g0.

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

/// The goroutine whose assist a thread's g0 is marking for, by g0.
#[map]
static MARKING_FOR: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct Assisting {
    start_ns: u64,
    /// Set while inside `gcAssistAlloc1` / `gcMarkDone` / `gcParkAssist`; 0 otherwise.
    work_since: u64,
    mark_done_since: u64,
    park_since: u64,
    work_ns: u64,
    mark_done_ns: u64,
    parked_ns: u64,
    limiter: u64,
    /// How many calls deeper an assist of the same goroutine is running inside this one.
    nested: u64,
}

/// A goroutine's assist entered while its earlier one is in flight is nested in it only within
/// this long. A safeguard: user space forgets every open call whenever the group is attached
/// again, so an entry whose RET was missed while detached does not outlive the detachment.
const NESTED_WITHIN_NS: u64 = 1_000_000_000;

#[inline(always)]
fn now() -> u64 {
    // SAFETY: plain helper call with no arguments.
    unsafe { bpf_ktime_get_ns() }
}

uprobe_program!(assist_alloc, assist_alloc_m, |ctx| {
    if !hit(ProbeId::AssistAlloc) {
        return 0;
    }
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
    let t = now();
    // An allocation inside an assist (a semaphore's first wait in gcMarkDone allocates) can
    // assist again on the same goroutine: that call is part of this one, whose state must
    // survive it. (Not told by the stack pointer: the goroutine's stack may have been moved
    // since the outer call began, parked, and the nested one can then sit higher.)
    if let Some(outer) = ASSISTING.get_ptr_mut(&g) {
        // SAFETY: a pointer from a successful lookup, written only by this goroutine's probes.
        unsafe {
            if t.saturating_sub((*outer).start_ns) < NESTED_WITHIN_NS {
                (*outer).nested += 1;
                return Ok(());
            }
        }
    }
    let cfg = config();
    // The limiter is checked before any work: set now, the call returns without paying.
    let limiter = if cfg.limiter_enabled_addr == 0 {
        0
    } else {
        read::<u8>(cfg.limiter_enabled_addr, 0).unwrap_or(0)
    };
    let state = Assisting {
        start_ns: t,
        work_since: 0,
        mark_done_since: 0,
        park_since: 0,
        work_ns: 0,
        mark_done_ns: 0,
        parked_ns: 0,
        limiter: u64::from(limiter),
        nested: 0,
    };
    ASSISTING.insert(&g, &state, 0).map_err(|_| COUNTER_LOST)
}

uprobe_program!(
    /// At each RET (never a uretprobe: those corrupt Go's stack unwinding).
    assist_alloc_ret,
    assist_alloc_ret_m,
    |ctx| {
        if !hit(ProbeId::AssistAllocReturn) {
            return 0;
        }
        finish(try_assist_alloc_ret(&ctx))
    }
);

#[inline(always)]
fn try_assist_alloc_ret(ctx: &ProbeContext) -> Result<(), u32> {
    let regs = GoRegs::new(ctx);
    let g = regs.g();
    let Some(ptr) = ASSISTING.get_ptr_mut(&g) else {
        // Entered before the group was attached: its start is unknown.
        return Ok(());
    };
    // SAFETY: a pointer from a successful lookup, written only by this goroutine's probes; the
    // value is copied out before the entry is removed.
    let state = unsafe {
        if (*ptr).nested > 0 {
            (*ptr).nested -= 1;
            return Ok(());
        }
        *ptr
    };
    let _ = ASSISTING.remove(&g);
    let event = AssistEvent {
        header: header(EventKind::Assist as u32),
        goroutine: g,
        duration_ns: now().saturating_sub(state.start_ns),
        work_ns: state.work_ns,
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
    Work,
    MarkDone,
    Park,
}

#[inline(always)]
fn open(ctx: &ProbeContext, span: Span) -> u32 {
    open_for(GoRegs::new(ctx).g(), span)
}

#[inline(always)]
fn open_for(g: u64, span: Span) -> u32 {
    if let Some(state) = ASSISTING.get_ptr_mut(&g) {
        let t = now();
        // SAFETY: a pointer from a successful lookup; only this goroutine's probes write it,
        // and a goroutine runs on one thread at a time.
        unsafe {
            match span {
                Span::Work => (*state).work_since = t,
                Span::MarkDone => (*state).mark_done_since = t,
                Span::Park => (*state).park_since = t,
            }
        }
    }
    0
}

#[inline(always)]
fn close(ctx: &ProbeContext, span: Span) -> u32 {
    close_for(GoRegs::new(ctx).g(), span)
}

#[inline(always)]
fn close_for(g: u64, span: Span) -> u32 {
    if let Some(state) = ASSISTING.get_ptr_mut(&g) {
        let t = now();
        // SAFETY: as in `open`.
        unsafe {
            let (since, total) = match span {
                Span::Work => (&mut (*state).work_since, &mut (*state).work_ns),
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
    if !hit(ProbeId::AssistMarkDone) {
        return 0;
    }
    open(&ctx, Span::MarkDone)
});

uprobe_program!(assist_mark_done_ret, assist_mark_done_ret_m, |ctx| {
    if !hit(ProbeId::AssistMarkDoneReturn) {
        return 0;
    }
    close(&ctx, Span::MarkDone)
});

uprobe_program!(assist_park, assist_park_m, |ctx| {
    if !hit(ProbeId::AssistPark) {
        return 0;
    }
    open(&ctx, Span::Park)
});

uprobe_program!(assist_park_ret, assist_park_ret_m, |ctx| {
    if !hit(ProbeId::AssistParkReturn) {
        return 0;
    }
    close(&ctx, Span::Park)
});

uprobe_program!(assist_work, assist_work_m, |ctx| {
    if !hit(ProbeId::AssistWork) {
        return 0;
    }
    let regs = GoRegs::new(&ctx);
    let gp = regs.arg(0);
    // Only an assist this group saw begin; the thread's g0 keeps it for the RET.
    if ASSISTING.get_ptr(&gp).is_some() && MARKING_FOR.insert(&regs.g(), &gp, 0).is_ok() {
        open_for(gp, Span::Work);
    }
    0
});

uprobe_program!(assist_work_ret, assist_work_ret_m, |ctx| {
    if !hit(ProbeId::AssistWorkReturn) {
        return 0;
    }
    let g0 = GoRegs::new(&ctx).g();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(gp) = (unsafe { MARKING_FOR.get(&g0) }).copied() else {
        return 0;
    };
    let _ = MARKING_FOR.remove(&g0);
    close_for(gp, Span::Work)
});
