//! The cheapest possible probe: counts a hit and returns. User space times it on a no-op function
//! of its own to learn what one uprobe hit costs on this host.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use mapleak_common::ProbeId;

use crate::counters::hit;

#[uprobe]
pub fn calibrate(_ctx: ProbeContext) -> u32 {
    hit(ProbeId::Calibrate);
    0
}
