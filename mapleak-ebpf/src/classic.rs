//! Classic (hmap/bucket) map growth: `runtime.hashGrow(t *maptype, h *hmap)`, Go 1.19–1.25.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use mapleak_common::{
    ClassicGrowEvent, EventKind, ProbeId,
    probe::{COUNTER_GROWTH_NS, COUNTER_LOST, COUNTER_READ_ERRORS},
};

use crate::{
    counters::{finish, hit, spent, started},
    go::{GoRegs, header, read, site},
    maps::{EVENTS, config, wakeup},
};

#[uprobe]
pub fn classic_hash_grow(ctx: ProbeContext) -> u32 {
    let t0 = started();
    hit(ProbeId::HashGrow);
    let r = finish(try_classic_hash_grow(&ctx));
    spent(COUNTER_GROWTH_NS, t0);
    r
}

#[inline(always)]
fn try_classic_hash_grow(ctx: &ProbeContext) -> Result<(), u32> {
    let cfg = config();
    let regs = GoRegs::new(ctx);
    let map_type = regs.arg(0);
    let map = regs.arg(1);
    let bucket_type: u64 = read(map_type, cfg.maptype_bucket).map_err(|_| COUNTER_READ_ERRORS)?;
    let event = ClassicGrowEvent {
        header: header(EventKind::ClassicGrow as u32, &regs, cfg.g_goid),
        map,
        map_type,
        count: read(map, cfg.hmap_count).map_err(|_| COUNTER_READ_ERRORS)?,
        bucket_size: read(bucket_type, cfg.type_size).map_err(|_| COUNTER_READ_ERRORS)?,
        bucket_ptr_bytes: read(bucket_type, cfg.type_ptr_bytes).map_err(|_| COUNTER_READ_ERRORS)?,
        b: read(map, cfg.hmap_b).map_err(|_| COUNTER_READ_ERRORS)?,
        flags: read(map, cfg.hmap_flags).map_err(|_| COUNTER_READ_ERRORS)?,
        noverflow: read(map, cfg.hmap_noverflow).map_err(|_| COUNTER_READ_ERRORS)?,
        key_size: read(map_type, cfg.maptype_key_size).map_err(|_| COUNTER_READ_ERRORS)?,
        value_size: read(map_type, cfg.maptype_value_size).map_err(|_| COUNTER_READ_ERRORS)?,
        _pad: [0; 2],
        site: site(ctx, &regs),
    };
    let mut entry = EVENTS.reserve::<ClassicGrowEvent>(0).ok_or(COUNTER_LOST)?;
    entry.write(event);
    entry.submit(wakeup());
    Ok(())
}
