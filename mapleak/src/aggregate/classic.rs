//! What one classic-map grow does, from the runtime's own rules (`hashGrow`, `makeBucketArray`).

use super::{
    growth::{Detail, GrowKind, Growth},
    malloc::{roundupsize, slot_size},
};
use crate::{
    gofacts,
    inspect::{BuildInfo, GoVersion},
};
use mapleak_common::ClassicGrowEvent;

/// Slots per classic bucket (`bucketCnt`).
const BUCKET_SLOTS: u64 = 8;
const LOAD_FACTOR_DEN: u64 = 2;

/// Version-dependent constants of the map implementation and the allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoRules {
    /// `loadFactorNum`: 12 in Go 1.21 (an integer-truncation slip), 13 elsewhere.
    pub load_factor_num: u64,
    /// Malloc headers for pointerful objects > 512 B (Go 1.22+, unless `noallocheaders`).
    pub malloc_headers: bool,
}

impl GoRules {
    pub fn new(version: &GoVersion, build: &BuildInfo) -> Self {
        Self {
            load_factor_num: gofacts::CLASSIC_LOAD_FACTOR_NUM
                .at(version.minor)
                .unwrap_or(13),
            malloc_headers: gofacts::MALLOC_HEADERS.holds(version.minor)
                && !build.has_experiment("noallocheaders"),
        }
    }
}

/// `None` when the event's B is impossible (the kernel read garbage).
pub fn classic_growth(rules: &GoRules, event: &ClassicGrowEvent) -> Option<Growth> {
    let doubling = over_load_factor(rules, event.count.saturating_add(1), event.b)?;
    let new_b = if doubling { event.b + 1 } else { event.b };
    let noscan = event.bucket_ptr_bytes == 0;
    let buckets = bucket_count(rules, new_b, event.bucket_size, noscan)?;
    let bytes = buckets.checked_mul(event.bucket_size)?;
    Some(Growth {
        kind: if doubling {
            GrowKind::Double
        } else {
            GrowKind::SameSize
        },
        entries: event.count,
        units: buckets,
        bytes,
        heap_bytes: slot_size(bytes, noscan, rules.malloc_headers),
        detail: Detail::Classic {
            old_b: event.b,
            new_b,
        },
    })
}

/// Slots in the regular buckets of a classic map with `b`.
pub fn capacity(b: u8) -> u64 {
    BUCKET_SLOTS << b
}

/// `overLoadFactor(count, B)`.
pub(super) fn over_load_factor(rules: &GoRules, count: u64, b: u8) -> Option<bool> {
    let shift = 1u64.checked_shl(u32::from(b))?;
    Some(count > BUCKET_SLOTS && count > rules.load_factor_num * (shift / LOAD_FACTOR_DEN))
}

/// `makeBucketArray`'s bucket count for `b`: 2^b, plus 2^(b-4) overflow buckets from b = 4,
/// rounded up to fill the malloc size class.
pub(super) fn bucket_count(rules: &GoRules, b: u8, bucket_size: u64, noscan: bool) -> Option<u64> {
    if b >= 48 || bucket_size == 0 {
        return None;
    }
    let mut n = 1u64 << b;
    if b >= 4 {
        n += 1u64 << (b - 4);
        let size = bucket_size.checked_mul(n)?;
        let up = roundupsize(size, noscan, rules.malloc_headers);
        if up != size {
            n = up / bucket_size;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO121: GoRules = GoRules {
        load_factor_num: 12,
        malloc_headers: false,
    };
    const GO122: GoRules = GoRules {
        load_factor_num: 13,
        malloc_headers: true,
    };

    fn event(count: u64, b: u8, bucket_size: u64, ptr_bytes: u64) -> ClassicGrowEvent {
        ClassicGrowEvent {
            count,
            b,
            bucket_size,
            bucket_ptr_bytes: ptr_bytes,
            ..Default::default()
        }
    }

    /// Fills a `map[K]V` from empty to `n` entries, applying the runtime's trigger rule; returns
    /// each growth.
    fn fill(rules: &GoRules, n: u64, bucket_size: u64, ptr_bytes: u64) -> Vec<Growth> {
        let mut b = 0u8;
        let mut out = Vec::new();
        for count in 0..n {
            // mapassign calls hashGrow before inserting when count+1 is over the load factor.
            if over_load_factor(rules, count + 1, b).unwrap() {
                let g = classic_growth(rules, &event(count, b, bucket_size, ptr_bytes)).unwrap();
                let Detail::Classic { new_b, .. } = g.detail else {
                    unreachable!()
                };
                b = new_b;
                out.push(g);
            }
        }
        out
    }

    #[test]
    fn map_int_int_on_go_1_22_matches_the_runtime_trace() {
        // go-runtime.md §1.5: hashGrow at count 8, 13, 26, 52 … with n = 2, 4, 8, 18 buckets.
        let g = fill(&GO122, 100_000, 144, 0);
        assert_eq!(g.len(), 14);
        let firsts: Vec<(u64, u64, u64)> = g[..4]
            .iter()
            .map(|g| (g.entries, g.units, g.bytes))
            .collect();
        assert_eq!(
            firsts,
            vec![(8, 2, 288), (13, 4, 576), (26, 8, 1152), (52, 18, 2592)]
        );
        let last = g.last().unwrap();
        assert_eq!(last.entries, 53_248);
        assert_eq!(
            last.detail,
            Detail::Classic {
                old_b: 13,
                new_b: 14
            }
        );
        assert_eq!((last.units, last.bytes), (17_408, 2_506_752));
        assert_eq!(capacity(14), 8 << 14);
    }

    #[test]
    fn map_int_int_on_go_1_21_grows_fifteen_times() {
        // Load factor 6.0: grows at 8, 12, 24, 48 … 98 304.
        let g = fill(&GO121, 100_000, 144, 0);
        assert_eq!(g.len(), 15);
        let at: Vec<u64> = g.iter().map(|g| g.entries).collect();
        assert_eq!(&at[..4], &[8, 12, 24, 48]);
        assert_eq!(*at.last().unwrap(), 98_304);
        // B 14 → 15: 32768 + 2048 buckets × 144 B = 5 013 504 B, already a page multiple.
        assert_eq!(g.last().unwrap().bytes, 5_013_504);
    }

    #[test]
    fn bytes_for_several_key_and_value_sizes() {
        // map[int32]int32: bucket 8 + 8·4 + 8·4 + 8 = 80 B. B 3→4: 17 buckets = 1360 B → class
        // 1408 → 17 buckets (1408/80 = 17.6).
        let g = classic_growth(&GO122, &event(52, 3, 80, 0)).unwrap();
        assert_eq!((g.units, g.bytes), (17, 1360));
        // map[string]*T: bucket 8 + 8·16 + 8·8 + 8 = 208 B with pointers. B 4→5: 34 buckets =
        // 7072 B; + 8 B header → class 8192 → 8184 usable → 39 buckets = 8112 B.
        let g = classic_growth(&GO122, &event(104, 4, 208, 200)).unwrap();
        assert_eq!((g.units, g.bytes), (39, 8112));
        // The same on Go 1.21 (no malloc headers): class 8192 → 39 buckets too.
        let g = classic_growth(&GO121, &event(96, 4, 208, 200)).unwrap();
        assert_eq!((g.units, g.bytes), (39, 8112));
        // map[[100]byte]int: bucket 8 + 800 + 64 + 8 = 880 B. B 4→5 (34 buckets = 29 920 B)
        // → class 32 768 → 37 buckets = 32 560 B.
        let g = classic_growth(&GO122, &event(104, 4, 880, 0)).unwrap();
        assert_eq!((g.units, g.bytes), (37, 32_560));
    }

    #[test]
    fn under_the_load_factor_is_a_same_size_grow() {
        let g = classic_growth(&GO122, &event(40, 4, 144, 0)).unwrap();
        assert_eq!(g.kind, GrowKind::SameSize);
        assert_eq!(g.detail, Detail::Classic { old_b: 4, new_b: 4 });
    }

    #[test]
    fn impossible_b_is_rejected() {
        assert!(classic_growth(&GO122, &event(1, 200, 144, 0)).is_none());
        assert!(classic_growth(&GO122, &event(u64::MAX, 60, 144, 0)).is_none());
        assert!(classic_growth(&GO122, &event(100, 4, 0, 0)).is_none());
    }
}
