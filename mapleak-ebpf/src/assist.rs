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
    go::{GoRegs, StackTop, header_at, read, submit_with_frames},
    maps::config,
};

/// Each goroutine's assist state: open while an assist is in flight, closed (start 0) between
/// them. LRU: the states of goroutines that have ended age out.
#[map]
static ASSISTING: LruHashMap<u64, Assisting> = LruHashMap::with_max_entries(16384, 0);

/// The goroutine whose assist a thread's g0 is marking for, by g0; 0 while it marks for none.
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
    // A goroutine's state stays in the map between its assists, closed (start 0), and is
    // reopened in place: an LRU insert at every entry and a removal at every RET had been most of
    // these probes' cost.
    let Some(state) = ASSISTING.get_ptr_mut(&g) else {
        return ASSISTING
            .insert(&g, &opened(t), 0)
            .map_err(|_| COUNTER_LOST);
    };
    // SAFETY: a pointer from a successful lookup, written only by this goroutine's probes.
    unsafe {
        // An allocation inside an assist (a semaphore's first wait in gcMarkDone allocates) can
        // assist again on the same goroutine: that call is part of this one, whose state must
        // survive it. (Not told by the stack pointer: the goroutine's stack may have been moved
        // since the outer call began, parked, and the nested one can then sit higher.)
        if (*state).start_ns != 0 && t.saturating_sub((*state).start_ns) < NESTED_WITHIN_NS {
            (*state).nested += 1;
            return Ok(());
        }
        *state = opened(t);
    }
    Ok(())
}

/// An assist's state as it begins at `t`.
#[inline(always)]
fn opened(t: u64) -> Assisting {
    let cfg = config();
    // The limiter is checked before any work: set now, the call returns without paying.
    let limiter = if cfg.limiter_enabled_addr == 0 {
        0
    } else {
        read::<u8>(cfg.limiter_enabled_addr, 0).unwrap_or(0)
    };
    Assisting {
        start_ns: t,
        work_since: 0,
        mark_done_since: 0,
        park_since: 0,
        work_ns: 0,
        mark_done_ns: 0,
        parked_ns: 0,
        limiter: u64::from(limiter),
        nested: 0,
    }
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
    // value is copied out before the state is closed.
    let state = unsafe {
        if (*ptr).start_ns == 0 {
            // Closed: this call was entered before the group was attached.
            return Ok(());
        }
        if (*ptr).nested > 0 {
            (*ptr).nested -= 1;
            return Ok(());
        }
        let state = *ptr;
        (*ptr).start_ns = 0;
        state
    };
    let t = now();
    let event = AssistEvent {
        header: header_at(EventKind::Assist as u32, t),
        goroutine: g,
        duration_ns: t.saturating_sub(state.start_ns),
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

/// The assist in flight on goroutine `g`, if one is.
#[inline(always)]
fn open_assist(g: u64) -> Option<*mut Assisting> {
    let state = ASSISTING.get_ptr_mut(&g)?;
    // SAFETY: a pointer from a successful lookup.
    (unsafe { (*state).start_ns } != 0).then_some(state)
}

#[inline(always)]
fn open(ctx: &ProbeContext, span: Span) -> u32 {
    open_for(GoRegs::new(ctx).g(), span)
}

#[inline(always)]
fn open_for(g: u64, span: Span) -> u32 {
    if let Some(state) = open_assist(g) {
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
    if let Some(state) = open_assist(g) {
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
    // Only an assist this group saw begin; the thread's g0 keeps it for the RET (in place, as
    // an assist's state: a thread's g0 never changes).
    if open_assist(gp).is_none() {
        return 0;
    }
    let g0 = regs.g();
    match MARKING_FOR.get_ptr_mut(&g0) {
        // SAFETY: a pointer from a successful lookup; only this thread's probes write it.
        Some(slot) => unsafe { *slot = gp },
        None => {
            if MARKING_FOR.insert(&g0, &gp, 0).is_err() {
                return 0;
            }
        }
    }
    open_for(gp, Span::Work)
});

uprobe_program!(assist_work_ret, assist_work_ret_m, |ctx| {
    if !hit(ProbeId::AssistWorkReturn) {
        return 0;
    }
    let g0 = GoRegs::new(&ctx).g();
    let Some(slot) = MARKING_FOR.get_ptr_mut(&g0) else {
        return 0;
    };
    // SAFETY: a pointer from a successful lookup; only this thread's probes write it. 0 is no
    // goroutine: the slot is closed.
    let gp = unsafe { core::mem::replace(&mut *slot, 0) };
    if gp == 0 {
        return 0;
    }
    close_for(gp, Span::Work)
});
