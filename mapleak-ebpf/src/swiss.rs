//! Swiss-table map growth (Go 1.24+, `internal/runtime/maps`): the three functions that allocate
//! a map's groups as it grows. None of them runs per insert.

use mapleak_common::{
    EventKind, ProbeId, SWISS_MAP_WORDS, SWISS_TABLE_WORDS, SwissGrowEvent, SwissOp,
    probe::COUNTER_READ_ERRORS,
};

use crate::{
    counters::{finish, hit},
    go::{GoRegs, field, header, read, read_words},
    maps::config,
    types,
};

uprobe_program!(
    /// `(*Map).growToSmall(m, typ)`.
    swiss_grow_to_small,
    swiss_grow_to_small_m,
    |ctx| {
        if !hit(ProbeId::SwissGrowToSmall) {
            return 0;
        }
        let regs = GoRegs::new(&ctx);
        finish(emit(
            &regs,
            SwissOp::GrowToSmall,
            regs.arg(0),
            0,
            regs.arg(1),
        ))
    }
);

uprobe_program!(
    /// `(*Map).growToTable(m, typ)`.
    swiss_grow_to_table,
    swiss_grow_to_table_m,
    |ctx| {
        if !hit(ProbeId::SwissGrowToTable) {
            return 0;
        }
        let regs = GoRegs::new(&ctx);
        finish(emit(
            &regs,
            SwissOp::GrowToTable,
            regs.arg(0),
            0,
            regs.arg(1),
        ))
    }
);

uprobe_program!(
    /// `(*table).rehash(t, typ, m)`: grows the table, or splits it at the maximum capacity.
    swiss_rehash,
    swiss_rehash_m,
    |ctx| {
        if !hit(ProbeId::SwissRehash) {
            return 0;
        }
        let regs = GoRegs::new(&ctx);
        finish(emit(
            &regs,
            SwissOp::Rehash,
            regs.arg(2),
            regs.arg(0),
            regs.arg(1),
        ))
    }
);

#[inline(always)]
fn emit(regs: &GoRegs, op: SwissOp, map: u64, table: u64, map_type: u64) -> Result<(), u32> {
    let cfg = config();
    let err = |_| COUNTER_READ_ERRORS;
    let m: [u64; SWISS_MAP_WORDS] = read_words(map).map_err(err)?;
    let t: [u64; SWISS_TABLE_WORDS] = if table == 0 {
        [0]
    } else {
        read_words(table).map_err(err)?
    };
    let event = SwissGrowEvent {
        header: header(EventKind::SwissGrow as u32),
        map,
        table,
        map_type,
        used: field(&m, cfg.swiss_map_used, 8),
        dir_len: field(&m, cfg.swiss_map_dir_len, 8),
        seed: field(&m, cfg.swiss_map_seed, 8),
        table_capacity: field(&t, cfg.swiss_table_capacity, 2) as u16,
        op: op as u8,
        local_depth: field(&t, cfg.swiss_table_local_depth, 1) as u8,
        global_depth: field(&m, cfg.swiss_map_global_depth, 1) as u8,
        ..Default::default()
    };
    types::submit_growth(event, regs, map_type, |event| {
        let key_type: u64 = read(map_type, cfg.maptype_key).map_err(err)?;
        let elem_type: u64 = read(map_type, cfg.maptype_elem).map_err(err)?;
        event.group_size = read(map_type, cfg.maptype_group_size).map_err(err)?;
        event.key_size = read::<u64>(key_type, cfg.type_size).map_err(err)? as u32;
        event.elem_size = read::<u64>(elem_type, cfg.type_size).map_err(err)? as u32;
        Ok(())
    })
}
