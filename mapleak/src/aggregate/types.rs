//! Map type sizes by type address.
//!
//! The kernel describes a map type (its bucket or group size, key and value sizes) only in the
//! first growth event of that type on each CPU, since a type never changes: the events after it
//! leave those fields zero and are completed here. A record from one CPU cannot overtake an
//! earlier one from the same CPU, so a completion that finds nothing means a record was lost or
//! corrupted, and the event is counted invalid rather than sized as zero.

use rustc_hash::FxHashMap as HashMap;

use mapleak_common::{ClassicGrowEvent, SwissGrowEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sizes {
    Classic {
        bucket_size: u64,
        bucket_ptr_bytes: u64,
        key_size: u8,
        value_size: u8,
    },
    Swiss {
        group_size: u64,
        key_size: u32,
        elem_size: u32,
    },
}

/// Map types remembered: a program has a few hundred at most; the bound only keeps a corrupt
/// stream from growing the table.
const MAX_TYPES: usize = 1 << 16;

#[derive(Default)]
pub struct TypeTable {
    sizes: HashMap<u64, Sizes>,
}

impl TypeTable {
    /// The sizes of `map_type`: learned from `described` when the event carries them, else as
    /// learned before.
    fn sizes(&mut self, map_type: u64, described: Option<Sizes>) -> Option<Sizes> {
        match described {
            Some(sizes) => {
                if self.sizes.len() < MAX_TYPES || self.sizes.contains_key(&map_type) {
                    self.sizes.insert(map_type, sizes);
                }
                Some(sizes)
            }
            None => self.sizes.get(&map_type).copied(),
        }
    }

    /// Learns `e`'s type from it, or fills it in from an earlier event; `false` when neither.
    pub fn classic(&mut self, e: &mut ClassicGrowEvent) -> bool {
        let described = (e.bucket_size != 0).then_some(Sizes::Classic {
            bucket_size: e.bucket_size,
            bucket_ptr_bytes: e.bucket_ptr_bytes,
            key_size: e.key_size,
            value_size: e.value_size,
        });
        let Some(Sizes::Classic {
            bucket_size,
            bucket_ptr_bytes,
            key_size,
            value_size,
        }) = self.sizes(e.map_type, described)
        else {
            return false;
        };
        e.bucket_size = bucket_size;
        e.bucket_ptr_bytes = bucket_ptr_bytes;
        e.key_size = key_size;
        e.value_size = value_size;
        true
    }

    /// [`TypeTable::classic`] for Swiss maps.
    pub fn swiss(&mut self, e: &mut SwissGrowEvent) -> bool {
        let described = (e.group_size != 0).then_some(Sizes::Swiss {
            group_size: e.group_size,
            key_size: e.key_size,
            elem_size: e.elem_size,
        });
        let Some(Sizes::Swiss {
            group_size,
            key_size,
            elem_size,
        }) = self.sizes(e.map_type, described)
        else {
            return false;
        };
        e.group_size = group_size;
        e.key_size = key_size;
        e.elem_size = elem_size;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_described_type_completes_later_events_of_that_type_only() {
        let mut types = TypeTable::default();
        let described = ClassicGrowEvent {
            map_type: 0x10,
            bucket_size: 144,
            bucket_ptr_bytes: 0,
            key_size: 8,
            value_size: 8,
            ..Default::default()
        };
        let mut first = described;
        assert!(types.classic(&mut first));
        assert_eq!(first, described);
        let mut later = ClassicGrowEvent {
            map_type: 0x10,
            count: 13,
            ..Default::default()
        };
        assert!(types.classic(&mut later));
        assert_eq!(
            (later.bucket_size, later.key_size, later.count),
            (144, 8, 13)
        );
        let mut other = ClassicGrowEvent {
            map_type: 0x20,
            ..Default::default()
        };
        assert!(!types.classic(&mut other));
        // A Swiss event never takes a classic description, even at the same address.
        let mut swiss = SwissGrowEvent {
            map_type: 0x10,
            ..Default::default()
        };
        assert!(!types.swiss(&mut swiss));
    }

    #[test]
    fn swiss_types_are_learned_and_applied() {
        let mut types = TypeTable::default();
        let mut first = SwissGrowEvent {
            map_type: 0x30,
            group_size: 136,
            key_size: 8,
            elem_size: 8,
            ..Default::default()
        };
        assert!(types.swiss(&mut first));
        let mut later = SwissGrowEvent {
            map_type: 0x30,
            ..Default::default()
        };
        assert!(types.swiss(&mut later));
        assert_eq!((later.group_size, later.elem_size), (136, 8));
    }
}
