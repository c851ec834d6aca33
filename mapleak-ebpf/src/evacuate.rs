//! Classic-map evacuation (opt-in): `runtime.evacuate*(t, h, oldbucket)` moves one old bucket
//! into the grown array; the old array stays allocated until every bucket has moved. Each call
//! updates the map's entry in `EVACUATING`; one event per growth is sent when the map's old
//! array changes, so the evacuation's span costs no event per call.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::ProbeContext};
use mapleak_common::{
    EvacuatedEvent, EventKind, ProbeId,
    probe::{COUNTER_LOST, COUNTER_READ_ERRORS},
};

use mapleak_common::maps::Evacuation;

use crate::{
    counters::{finish, hit},
    go::{GoRegs, header, read},
    maps::{EVACUATING, EVENTS, config, wakeup},
};

#[inline(always)]
fn on_evacuate(ctx: &ProbeContext, probe: ProbeId) -> u32 {
    if !hit(probe) {
        return 0;
    }
    finish(track(ctx))
}

#[inline(always)]
fn track(ctx: &ProbeContext) -> Result<(), u32> {
    let cfg = config();
    let regs = GoRegs::new(ctx);
    let map = regs.arg(1);
    let old_buckets: u64 = read(map, cfg.hmap_oldbuckets).map_err(|_| COUNTER_READ_ERRORS)?;
    // SAFETY: plain helper call with no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(e) = EVACUATING.get_ptr_mut(&map) {
        // SAFETY: the pointer comes from a successful lookup; a racing update of the same map
        // from another CPU can only blur the call count, never the memory.
        let e = unsafe { &mut *e };
        if e.old_buckets == old_buckets {
            e.last_ns = now;
            e.calls += 1;
            return Ok(());
        }
        let done = EvacuatedEvent {
            header: header(EventKind::Evacuated as u32),
            map,
            old_buckets: e.old_buckets,
            first_ns: e.first_ns,
            last_ns: e.last_ns,
            calls: e.calls,
        };
        *e = Evacuation::starting(old_buckets, now);
        let mut entry = EVENTS.reserve::<EvacuatedEvent>(0).ok_or(COUNTER_LOST)?;
        entry.write(done);
        entry.submit(wakeup());
        return Ok(());
    }
    EVACUATING
        .insert(&map, &Evacuation::starting(old_buckets, now), 0)
        .map_err(|_| COUNTER_LOST)
}

uprobe_program!(evacuate, evacuate_m, |ctx| {
    on_evacuate(&ctx, ProbeId::Evacuate)
});

uprobe_program!(evacuate_fast32, evacuate_fast32_m, |ctx| {
    on_evacuate(&ctx, ProbeId::EvacuateFast32)
});

uprobe_program!(evacuate_fast64, evacuate_fast64_m, |ctx| {
    on_evacuate(&ctx, ProbeId::EvacuateFast64)
});

uprobe_program!(evacuate_faststr, evacuate_faststr_m, |ctx| {
    on_evacuate(&ctx, ProbeId::EvacuateFastStr)
});
