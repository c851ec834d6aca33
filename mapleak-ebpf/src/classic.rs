//! Classic (hmap/bucket) map growth: `runtime.hashGrow(t *maptype, h *hmap)`, Go 1.19–1.25.

use aya_ebpf::programs::ProbeContext;
use mapleak_common::{
    ClassicGrowEvent, EventKind, HMAP_WORDS, ProbeId, probe::COUNTER_READ_ERRORS,
};

use crate::{
    counters::{finish, hit},
    go::{GoRegs, field, header, read, read_words},
    maps::config,
    types,
};

uprobe_program!(classic_hash_grow, classic_hash_grow_m, |ctx| {
    if !hit(ProbeId::HashGrow) {
        return 0;
    }
    finish(try_classic_hash_grow(&ctx))
});

#[inline(always)]
fn try_classic_hash_grow(ctx: &ProbeContext) -> Result<(), u32> {
    let cfg = config();
    let regs = GoRegs::new(ctx);
    let map_type = regs.arg(0);
    let map = regs.arg(1);
    let err = |_| COUNTER_READ_ERRORS;
    // count, flags, B, noverflow and hash0 share the hmap's first two words: one read.
    let h: [u64; HMAP_WORDS] = read_words(map).map_err(err)?;
    let event = ClassicGrowEvent {
        header: header(EventKind::ClassicGrow as u32),
        map,
        map_type,
        count: field(&h, cfg.hmap_count, 8),
        b: field(&h, cfg.hmap_b, 1) as u8,
        flags: field(&h, cfg.hmap_flags, 1) as u8,
        noverflow: field(&h, cfg.hmap_noverflow, 2) as u16,
        seed: field(&h, cfg.hmap_hash0, 4),
        ..Default::default()
    };
    types::submit_growth(event, &regs, map_type, |event| {
        let bucket_type: u64 = read(map_type, cfg.maptype_bucket).map_err(err)?;
        event.bucket_size = read(bucket_type, cfg.type_size).map_err(err)?;
        event.bucket_ptr_bytes = read(bucket_type, cfg.type_ptr_bytes).map_err(err)?;
        event.key_size = read(map_type, cfg.maptype_key_size).map_err(err)?;
        event.value_size = read(map_type, cfg.maptype_value_size).map_err(err)?;
        Ok(())
    })
}
