//! The calibration probe: does what a growth probe does — takes the user stack, reads user
//! memory, reserves an event — but discards the event. User space times it on a function of its
//! own to learn what one hit costs on this host.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use mapleak_common::{ProbeId, SwissGrowEvent, probe::COUNTER_CALIBRATE_NS};

use crate::{
    counters::{hit, spent, started},
    go::{GoRegs, read, site},
    maps::EVENTS,
};

#[uprobe]
pub fn calibrate(ctx: ProbeContext) -> u32 {
    let t0 = started();
    hit(ProbeId::Calibrate);
    let regs = GoRegs::new(&ctx);
    let mut event = SwissGrowEvent {
        site: site(&ctx, &regs),
        ..Default::default()
    };
    // As many reads of user memory as the growth probes make.
    for (i, slot) in [
        &mut event.map,
        &mut event.table,
        &mut event.map_type,
        &mut event.group_size,
        &mut event.used,
        &mut event.dir_len,
    ]
    .into_iter()
    .enumerate()
    {
        *slot = read::<u64>(regs.sp(), (i * 8) as u16).unwrap_or(0);
    }
    if let Some(mut entry) = EVENTS.reserve::<SwissGrowEvent>(0) {
        entry.write(event);
        entry.discard(0);
    }
    spent(COUNTER_CALIBRATE_NS, t0);
    0
}
