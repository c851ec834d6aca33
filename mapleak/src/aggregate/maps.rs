//! Per-map-instance state.

use mapleak_common::ClassicGrowEvent;

use super::classic::{GrowKind, Growth};

/// Growth records kept per map; a classic map can double at most ~48 times, so only runs of
/// same-size grows hit this.
const MAX_HISTORY: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapState {
    /// Address of the runtime map header.
    pub addr: u64,
    /// 0 for the first map seen at this address, then 1, 2 … as the address is reused.
    pub instance: u32,
    pub map_type: u64,
    pub key_size: u8,
    pub value_size: u8,
    pub bucket_size: u64,
    /// B after the last growth.
    pub b: u8,
    /// Entries when the map last grew.
    pub entries: u64,
    /// Slots after the last growth.
    pub capacity: u64,
    pub grow_events: u64,
    pub same_size_grows: u64,
    pub bytes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// `(timestamp, growth)`, oldest first, at most [`MAX_HISTORY`].
    pub history: Vec<(u64, Growth)>,
}

impl MapState {
    pub fn new(event: &ClassicGrowEvent, ts: u64, instance: u32) -> Self {
        Self {
            addr: event.map,
            instance,
            map_type: event.map_type,
            key_size: event.key_size,
            value_size: event.value_size,
            bucket_size: event.bucket_size,
            b: event.b,
            entries: 0,
            capacity: 0,
            grow_events: 0,
            same_size_grows: 0,
            bytes: 0,
            first_ns: ts,
            last_ns: ts,
            history: Vec::new(),
        }
    }

    /// Maps never shrink: a grow from a smaller B than this map already reached, or of another
    /// type, is a new map at a recycled address.
    pub fn is_reused_by(&self, event: &ClassicGrowEvent, growth: &Growth) -> bool {
        self.grow_events > 0 && (growth.old_b < self.b || event.map_type != self.map_type)
    }

    pub fn apply(&mut self, growth: &Growth, ts: u64) {
        self.b = growth.new_b;
        self.entries = growth.entries;
        self.capacity = growth.capacity;
        self.grow_events += 1;
        if growth.kind == GrowKind::SameSize {
            self.same_size_grows += 1;
        }
        self.bytes += growth.bytes;
        self.last_ns = ts;
        if self.history.len() < MAX_HISTORY {
            self.history.push((ts, *growth));
        }
    }
}
