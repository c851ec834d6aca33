//! What one Swiss-table growth allocates, from `internal/runtime/maps` (Go 1.24+).

use mapleak_common::{SwissGrowEvent, SwissOp};

use super::growth::{Detail, GrowKind, Growth};

/// `abi.SwissMapGroupSlots`.
pub const GROUP_SLOTS: u64 = 8;
/// `maxTableCapacity`: a table that would grow past this splits instead.
pub const MAX_TABLE_CAPACITY: u64 = 1024;
/// growToTable makes a table of `2 * GROUP_SLOTS` slots.
const FIRST_TABLE_CAPACITY: u64 = 2 * GROUP_SLOTS;

/// `None` when the event carries impossible values (the kernel read garbage).
pub fn swiss_growth(e: &SwissGrowEvent) -> Option<Growth> {
    if e.group_size == 0 {
        return None;
    }
    let (kind, slots, table_capacity, dir_len) = match SwissOp::try_from(e.op).ok()? {
        SwissOp::GrowToSmall => (GrowKind::Small, GROUP_SLOTS, 0, 0),
        SwissOp::GrowToTable => (GrowKind::Table, FIRST_TABLE_CAPACITY, 0, 1),
        SwissOp::Rehash => {
            let cap = u64::from(e.table_capacity);
            if !cap.is_power_of_two() || !(GROUP_SLOTS..=MAX_TABLE_CAPACITY).contains(&cap) {
                return None;
            }
            if 2 * cap <= MAX_TABLE_CAPACITY {
                (GrowKind::Grow, 2 * cap, cap, e.dir_len)
            } else {
                // Two new full-size tables; the directory doubles when the table was already
                // at the directory's depth (installTableSplit).
                let dir_len = if e.local_depth == e.global_depth {
                    e.dir_len.max(1).checked_mul(2)?
                } else {
                    e.dir_len
                };
                (GrowKind::Split, 2 * MAX_TABLE_CAPACITY, cap, dir_len)
            }
        }
    };
    let units = slots / GROUP_SLOTS;
    let bytes = units.checked_mul(e.group_size)?;
    Some(Growth {
        kind,
        entries: e.used,
        units,
        bytes,
        heap_bytes: heap_bytes(kind, bytes, e.dir_len, dir_len)?,
        detail: Detail::Swiss {
            table_capacity,
            dir_len,
        },
    })
}

/// `internal/runtime/maps.table`: five small fields and a groups reference (Go 1.24–1.27).
const TABLE_STRUCT_BYTES: u64 = 32;
const POINTER_BYTES: u64 = 8;

/// What malloc hands out for a growth of `bytes` of groups (`newarray`, its whole size-class
/// slot), with the tables `newTable` makes and the directory the growth makes
/// (`dir_len` entries, when it changed from `old_dir_len`, or growToTable's first).
///
/// Whether the group type holds pointers is not in the event: its arrays are sized as if it
/// did, which matters only where an 8-byte malloc header tips a size over its class.
fn heap_bytes(kind: GrowKind, bytes: u64, old_dir_len: u64, dir_len: u64) -> Option<u64> {
    let array = |b: u64| super::malloc::slot_size(b, false, true);
    let table = super::malloc::slot_size(TABLE_STRUCT_BYTES, false, true);
    Some(match kind {
        GrowKind::Small => array(bytes),
        GrowKind::Table => array(bytes) + table + array(POINTER_BYTES),
        GrowKind::Grow => array(bytes) + table,
        GrowKind::Split => {
            let directory = if dir_len != old_dir_len {
                array(dir_len.checked_mul(POINTER_BYTES)?)
            } else {
                0
            };
            2 * (array(bytes / 2) + table) + directory
        }
        GrowKind::Double | GrowKind::SameSize => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `map[int]int`: 8-byte control word + 8 slots of 16 bytes.
    const G: u64 = 136;

    fn event(op: SwissOp, cap: u16, dir_len: u64, local: u8, global: u8) -> SwissGrowEvent {
        SwissGrowEvent {
            group_size: G,
            op: op as u8,
            table_capacity: cap,
            dir_len,
            local_depth: local,
            global_depth: global,
            ..Default::default()
        }
    }

    #[test]
    fn heap_bytes_are_what_malloc_hands_out() {
        let heap = |op, cap, dir_len, local, global| {
            swiss_growth(&event(op, cap, dir_len, local, global))
                .unwrap()
                .heap_bytes
        };
        // One group of 136 B in the 144 B class; two in 288 B, with a 32 B table and an 8 B
        // directory.
        assert_eq!(heap(SwissOp::GrowToSmall, 0, 0, 0, 0), 144);
        assert_eq!(heap(SwissOp::GrowToTable, 0, 0, 0, 0), 288 + 32 + 8);
        // 128 groups, 17 408 B + an 8 B malloc header, take an 18 432 B slot.
        assert_eq!(heap(SwissOp::Rehash, 512, 1, 0, 0), 18_432 + 32);
        // A split: two such tables, and a directory of 2 pointers (16 B) when it doubles.
        assert_eq!(heap(SwissOp::Rehash, 1024, 1, 0, 0), 2 * (18_432 + 32) + 16);
        assert_eq!(heap(SwissOp::Rehash, 1024, 8, 2, 3), 2 * (18_432 + 32));
    }

    #[test]
    fn small_table_grow_and_split_allocate_the_documented_groups() {
        let g = swiss_growth(&event(SwissOp::GrowToSmall, 0, 0, 0, 0)).unwrap();
        assert_eq!((g.kind, g.units, g.bytes), (GrowKind::Small, 1, G));
        let g = swiss_growth(&event(SwissOp::GrowToTable, 0, 0, 0, 0)).unwrap();
        assert_eq!((g.kind, g.units, g.bytes), (GrowKind::Table, 2, 2 * G));
        let g = swiss_growth(&event(SwissOp::Rehash, 16, 1, 0, 0)).unwrap();
        assert_eq!((g.kind, g.units, g.bytes), (GrowKind::Grow, 4, 4 * G));
        let g = swiss_growth(&event(SwissOp::Rehash, 512, 1, 0, 0)).unwrap();
        assert_eq!((g.kind, g.units, g.bytes), (GrowKind::Grow, 128, 17_408));
        let g = swiss_growth(&event(SwissOp::Rehash, 1024, 1, 0, 0)).unwrap();
        assert_eq!((g.kind, g.units, g.bytes), (GrowKind::Split, 256, 256 * G));
        assert_eq!(
            g.detail,
            Detail::Swiss {
                table_capacity: 1024,
                dir_len: 2
            }
        );
        // A table shallower than the directory splits into entries that already exist.
        let g = swiss_growth(&event(SwissOp::Rehash, 1024, 8, 2, 3)).unwrap();
        assert_eq!(
            g.detail,
            Detail::Swiss {
                table_capacity: 1024,
                dir_len: 8
            }
        );
    }

    #[test]
    fn a_100k_fill_is_32767_groups() {
        // 1 small + 1 table + grows 16→…→1024 + 127 splits (go-runtime.md §1.8):
        // 1 + 2 + (4+8+16+32+64+128) + 127·256 groups.
        let mut groups = 1 + 2;
        let mut cap = 16;
        while cap < 1024 {
            groups += swiss_growth(&event(SwissOp::Rehash, cap, 1, 0, 0))
                .unwrap()
                .units;
            cap *= 2;
        }
        groups += 127
            * swiss_growth(&event(SwissOp::Rehash, 1024, 1, 0, 0))
                .unwrap()
                .units;
        assert_eq!(groups, 32_767);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(swiss_growth(&event(SwissOp::Rehash, 24, 1, 0, 0)).is_none());
        assert!(swiss_growth(&event(SwissOp::Rehash, 4096, 1, 0, 0)).is_none());
        assert!(swiss_growth(&event(SwissOp::Rehash, 0, 1, 0, 0)).is_none());
        let mut e = event(SwissOp::GrowToSmall, 0, 0, 0, 0);
        e.op = 9;
        assert!(swiss_growth(&e).is_none());
        e.op = SwissOp::GrowToSmall as u8;
        e.group_size = 0;
        assert!(swiss_growth(&e).is_none());
    }
}
