//! The calibration probe: does what a growth probe does — takes the user stack, reads user
//! memory, checks the per-CPU type slot, reserves an event — but discards the event. User space
//! times it on a function of its own to learn what one hit costs on this host.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use mapleak_common::{ClassicGrowEvent, EventKind, HMAP_WORDS, ProbeId};

use crate::{
    counters::hit,
    go::{GoRegs, field, header, read_words, site},
    maps::EVENTS,
    types,
};

#[uprobe]
pub fn calibrate(ctx: ProbeContext) -> u32 {
    hit(ProbeId::Calibrate);
    let regs = GoRegs::new(&ctx);
    // The growth probes' one read of the map header, here of the caller's stack.
    let words: [u64; HMAP_WORDS] = read_words(regs.sp()).unwrap_or_default();
    let event = ClassicGrowEvent {
        header: header(EventKind::ClassicGrow as u32, &regs, 0),
        count: field(&words, 8, 8),
        map_type: u64::from(types::is_new(regs.sp())),
        site: site(&ctx, &regs),
        ..Default::default()
    };
    if let Some(mut entry) = EVENTS.reserve::<ClassicGrowEvent>(0) {
        entry.write(event);
        entry.discard(0);
    }
    0
}
