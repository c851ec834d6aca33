//! One map growth, whichever implementation produced it.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowKind {
    /// Classic, over the load factor: twice the buckets.
    Double,
    /// Classic, too many overflow buckets: same size, rehashed to compact.
    SameSize,
    /// Swiss, first insert: one group.
    Small,
    /// Swiss, ninth insert: the small group becomes a 16-slot table.
    Table,
    /// Swiss, a table doubles its capacity.
    Grow,
    /// Swiss, a full 1024-slot table splits in two.
    Split,
}

/// Implementation-specific facts about a growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    Classic {
        old_b: u8,
        new_b: u8,
    },
    Swiss {
        /// Capacity of the rehashed table before the growth (0 for small/table).
        table_capacity: u64,
        /// Directory entries after the growth.
        dir_len: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Growth {
    pub kind: GrowKind,
    /// Entries in the map when it grew.
    pub entries: u64,
    /// Buckets (classic) or groups (Swiss) in the new allocation.
    pub units: u64,
    /// Bytes of the new bucket or group array.
    pub bytes: u64,
    /// What the allocator hands out for the growth, as `totalAlloc` counts it: the arrays
    /// rounded up to their size class or pages, and a Swiss growth's new tables and directory.
    /// `bytes` stays the arrays' own size, which the report has always shown.
    pub heap_bytes: u64,
    pub detail: Detail,
}

impl GrowKind {
    pub fn is_same_size(self) -> bool {
        self == GrowKind::SameSize
    }
}
