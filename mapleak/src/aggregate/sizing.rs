//! What a map of a given size costs, by the runtime's own rules: the arrays `make(map[K]V, n)`
//! allocates up front (`makemap`, Swiss `NewMap`), to price the fixes findings suggest.

use super::{
    MapIdentity,
    classic::{self, GoRules},
    swiss::{GROUP_SLOTS, MAX_TABLE_CAPACITY},
};
use crate::inspect::MapImpl;

/// Swiss `maxAvgGroupLoad`: tables are sized for 7 of every 8 slots full.
const SWISS_MAX_AVG_GROUP_LOAD: u64 = 7;

/// What `make(map[K]V, hint)` allocates for its buckets or groups: `(slots, bytes)`.
pub fn presized(
    rules: &GoRules,
    id: &MapIdentity,
    map_impl: MapImpl,
    hint: u64,
) -> Option<(u64, u64)> {
    match map_impl {
        MapImpl::Swiss => swiss_presized(id.unit_size, hint),
        MapImpl::Classic => {
            let b = classic_b_for_hint(rules, hint)?;
            Some((classic::capacity(b), classic_array_bytes(rules, id, b)?))
        }
    }
}

/// Bytes of the bucket array `makeBucketArray` allocates for a classic map with `b`.
pub fn classic_array_bytes(rules: &GoRules, id: &MapIdentity, b: u8) -> Option<u64> {
    classic::bucket_count(rules, b, id.unit_size, id.noscan)?.checked_mul(id.unit_size)
}

/// `makemap`: the smallest B whose buckets hold `hint` entries under the load factor.
fn classic_b_for_hint(rules: &GoRules, hint: u64) -> Option<u8> {
    (0u8..48).find(|&b| classic::over_load_factor(rules, hint, b) == Some(false))
}

/// `NewMap`: nothing for hint ≤ 8 (the first insert makes one group), else a directory of
/// power-of-two tables holding `hint` at 7/8 load.
fn swiss_presized(group_size: u64, hint: u64) -> Option<(u64, u64)> {
    if hint <= GROUP_SLOTS {
        return Some((GROUP_SLOTS, group_size));
    }
    let target = hint.checked_mul(GROUP_SLOTS)? / SWISS_MAX_AVG_GROUP_LOAD;
    let dir = target
        .div_ceil(MAX_TABLE_CAPACITY)
        .checked_next_power_of_two()?;
    let table = (target / dir)
        .max(GROUP_SLOTS)
        .checked_next_power_of_two()?;
    let slots = dir.checked_mul(table)?;
    Some((slots, (slots / GROUP_SLOTS).checked_mul(group_size)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO122: GoRules = GoRules {
        load_factor_num: 13,
        malloc_headers: true,
    };

    fn id(unit_size: u64) -> MapIdentity {
        MapIdentity {
            addr: 0,
            map_type: 0,
            key_size: 8,
            value_size: 8,
            unit_size,
            noscan: true,
            site: Default::default(),
            seed: 0,
        }
    }

    #[test]
    fn classic_hint_picks_the_bucket_array_makemap_does() {
        // map[int]int: 144-byte buckets. 1000 entries fit B=8 (6.5 × 256 = 1664) but not B=7
        // (832); B=8 also gets 16 overflow buckets: 272 × 144 = 39168, the 40960 size class…
        // above 32 KiB, so whole pages: 39168 rounds to 40960 = 284 buckets.
        let (slots, bytes) = presized(&GO122, &id(144), MapImpl::Classic, 1000).unwrap();
        assert_eq!(slots, 8 << 8);
        assert_eq!(bytes, 40960 / 144 * 144);
        // Up to 8 entries: one bucket.
        assert_eq!(
            presized(&GO122, &id(144), MapImpl::Classic, 8).unwrap(),
            (8, 144)
        );
    }

    #[test]
    fn swiss_hint_follows_new_map() {
        // 200 entries → target 228 → one table of 256 slots = 32 groups.
        assert_eq!(swiss_presized(136, 200), Some((256, 32 * 136)));
        // 100 000 → target 114 285 → 112 tables (rounded up to 128) of 892 → 1024 slots.
        assert_eq!(
            swiss_presized(136, 100_000),
            Some((128 * 1024, 128 * 128 * 136))
        );
        assert_eq!(swiss_presized(136, 5), Some((8, 136)));
    }
}
