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
    Some(Growth {
        kind,
        entries: e.used,
        units,
        bytes: units.checked_mul(e.group_size)?,
        detail: Detail::Swiss {
            table_capacity,
            dir_len,
        },
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
