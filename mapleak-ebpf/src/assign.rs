//! Map assignments (opt-in): `runtime.mapassign*(t, m, key)`, one hit per insert or update. Too
//! hot for an event each: the count per map lives in a per-CPU LRU hash that user space reads
//! every interval, and user space duty-cycles these probes like the others.

use aya_ebpf::programs::ProbeContext;
use mapleak_common::ProbeId;

use crate::{counters::hit, go::GoRegs, maps::ASSIGNS};

#[inline(always)]
fn count(ctx: &ProbeContext, probe: ProbeId) -> u32 {
    if !hit(probe) {
        return 0;
    }
    // The map is the second argument of every variant, classic and Swiss.
    let map = GoRegs::new(ctx).arg(1);
    match ASSIGNS.get_ptr_mut(&map) {
        // SAFETY: a per-CPU slot only this CPU writes, from a successful lookup.
        Some(n) => unsafe { *n += 1 },
        None => {
            // A full LRU evicts its least recently used map: counts then start again.
            let _ = ASSIGNS.insert(&map, &1, 0);
        }
    }
    0
}

uprobe_program!(assign, assign_m, |ctx| { count(&ctx, ProbeId::MapAssign) });

uprobe_program!(assign_fast32, assign_fast32_m, |ctx| {
    count(&ctx, ProbeId::MapAssignFast32)
});

uprobe_program!(assign_fast64, assign_fast64_m, |ctx| {
    count(&ctx, ProbeId::MapAssignFast64)
});

uprobe_program!(assign_fast64ptr, assign_fast64ptr_m, |ctx| {
    count(&ctx, ProbeId::MapAssignFast64Ptr)
});

uprobe_program!(assign_faststr, assign_faststr_m, |ctx| {
    count(&ctx, ProbeId::MapAssignFastStr)
});
