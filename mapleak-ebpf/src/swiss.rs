//! Swiss-table map growth (Go 1.24+, `internal/runtime/maps`): the three functions that allocate
//! a map's groups as it grows. None of them runs per insert.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use mapleak_common::{
    EventKind, ProbeId, SwissGrowEvent, SwissOp,
    probe::{COUNTER_GROWTH_NS, COUNTER_LOST, COUNTER_READ_ERRORS},
};

use crate::{
    counters::{finish, hit, spent, started},
    go::{GoRegs, header, read, site},
    maps::{EVENTS, config, wakeup},
};

/// `(*Map).growToSmall(m, typ)`.
#[uprobe]
pub fn swiss_grow_to_small(ctx: ProbeContext) -> u32 {
    let t0 = started();
    hit(ProbeId::SwissGrowToSmall);
    let regs = GoRegs::new(&ctx);
    let r = finish(emit(
        &ctx,
        &regs,
        SwissOp::GrowToSmall,
        regs.arg(0),
        0,
        regs.arg(1),
    ));
    spent(COUNTER_GROWTH_NS, t0);
    r
}

/// `(*Map).growToTable(m, typ)`.
#[uprobe]
pub fn swiss_grow_to_table(ctx: ProbeContext) -> u32 {
    let t0 = started();
    hit(ProbeId::SwissGrowToTable);
    let regs = GoRegs::new(&ctx);
    let r = finish(emit(
        &ctx,
        &regs,
        SwissOp::GrowToTable,
        regs.arg(0),
        0,
        regs.arg(1),
    ));
    spent(COUNTER_GROWTH_NS, t0);
    r
}

/// `(*table).rehash(t, typ, m)`: grows the table, or splits it at the maximum capacity.
#[uprobe]
pub fn swiss_rehash(ctx: ProbeContext) -> u32 {
    let t0 = started();
    hit(ProbeId::SwissRehash);
    let regs = GoRegs::new(&ctx);
    let r = finish(emit(
        &ctx,
        &regs,
        SwissOp::Rehash,
        regs.arg(2),
        regs.arg(0),
        regs.arg(1),
    ));
    spent(COUNTER_GROWTH_NS, t0);
    r
}

#[inline(always)]
fn emit(
    ctx: &ProbeContext,
    regs: &GoRegs,
    op: SwissOp,
    map: u64,
    table: u64,
    map_type: u64,
) -> Result<(), u32> {
    let cfg = config();
    let err = |_| COUNTER_READ_ERRORS;
    let key_type: u64 = read(map_type, cfg.maptype_key).map_err(err)?;
    let elem_type: u64 = read(map_type, cfg.maptype_elem).map_err(err)?;
    let (table_capacity, local_depth) = if table == 0 {
        (0, 0)
    } else {
        (
            read::<u16>(table, cfg.swiss_table_capacity).map_err(err)?,
            read::<u8>(table, cfg.swiss_table_local_depth).map_err(err)?,
        )
    };
    let event = SwissGrowEvent {
        header: header(EventKind::SwissGrow as u32, regs, cfg.g_goid),
        map,
        table,
        map_type,
        group_size: read(map_type, cfg.maptype_group_size).map_err(err)?,
        used: read(map, cfg.swiss_map_used).map_err(err)?,
        dir_len: read(map, cfg.swiss_map_dir_len).map_err(err)?,
        key_size: read::<u64>(key_type, cfg.type_size).map_err(err)? as u32,
        elem_size: read::<u64>(elem_type, cfg.type_size).map_err(err)? as u32,
        table_capacity,
        op: op as u8,
        local_depth,
        global_depth: read(map, cfg.swiss_map_global_depth).map_err(err)?,
        _pad: [0; 3],
        site: site(ctx, regs),
    };
    let mut entry = EVENTS.reserve::<SwissGrowEvent>(0).ok_or(COUNTER_LOST)?;
    entry.write(event);
    entry.submit(wakeup());
    Ok(())
}
