//! Per-map-instance state, for either map implementation.

use mapleak_common::Site;

use super::{
    births::Birth,
    classic,
    growth::{Detail, GrowKind, Growth},
    swiss::{GROUP_SLOTS, MAX_TABLE_CAPACITY},
};

/// Growth records kept per map; a classic map doubles at most ~48 times and a Swiss map's splits
/// are summarised by the counters, so only very long-lived maps hit this.
pub const MAX_HISTORY: usize = 256;

/// What identifies a map and its element sizes, taken from its first event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapIdentity {
    pub addr: u64,
    pub map_type: u64,
    pub key_size: u32,
    pub value_size: u32,
    /// Bytes of a bucket (classic) or group (Swiss).
    pub unit_size: u64,
    /// Classic: buckets hold no pointers (decides the allocator's size class).
    pub noscan: bool,
    /// Where this growth came from.
    pub site: Site,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapState {
    pub id: MapIdentity,
    /// 0 for the first map seen at this address, then 1, 2 … as the address is reused.
    pub instance: u32,
    /// Classic: B after the last growth.
    pub b: Option<u8>,
    /// Swiss: tables and directory entries (both 0 for a small map).
    pub tables: u64,
    pub dir_len: u64,
    /// Entries when the map last grew.
    pub entries: u64,
    /// Slots after the last growth. Swiss maps first seen mid-life count only what was seen.
    pub capacity: u64,
    pub grow_events: u64,
    pub same_size_grows: u64,
    pub bytes: u64,
    pub same_size_bytes: u64,
    /// Where the last growth came from.
    pub site: Site,
    pub first_ns: u64,
    pub last_ns: u64,
    /// `(timestamp, growth)`, oldest first, at most [`MAX_HISTORY`].
    pub history: Vec<(u64, Growth)>,
    /// Where it was made, when the creation probe saw it.
    pub created: Option<Birth>,
    /// Its size as last read from the target's memory.
    pub live: Option<LiveMap>,
    /// Inserts and updates counted by the assign probes at this address.
    pub assigns: Option<u64>,
    /// Classic: how long each growth kept its old bucket array (evacuate probes).
    pub evacuations: Vec<Evacuation>,
    /// The report interval in which it last grew (1-based; 0: none yet).
    pub grown_in_interval: u64,
}

/// One growth's evacuation: the old bucket array stays allocated beside the new one until the
/// last old bucket has moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evacuation {
    /// When the map grew.
    pub grow_ns: u64,
    /// From the growth to the last `evacuate` call seen.
    pub held_ns: u64,
    /// Bytes of the old array, held twice meanwhile.
    pub old_bytes: u64,
    pub calls: u64,
    /// Seen complete: the next growth replaced the old array, or it was gone when read at the
    /// end of the trace.
    pub finished: bool,
}

/// A map's header as read from the target's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveMap {
    /// Entries (`h.count` / `m.used`).
    pub entries: u64,
    /// Slots the map holds allocated.
    pub capacity: u64,
    /// Bytes of its bucket or group arrays.
    pub bytes: u64,
}

impl MapState {
    pub fn new(id: MapIdentity, ts: u64, instance: u32, created: Option<Birth>) -> Self {
        Self {
            id,
            instance,
            b: None,
            tables: 0,
            dir_len: 0,
            entries: 0,
            capacity: 0,
            grow_events: 0,
            same_size_grows: 0,
            bytes: 0,
            same_size_bytes: 0,
            site: id.site,
            first_ns: ts,
            last_ns: ts,
            history: Vec::new(),
            created,
            live: None,
            assigns: None,
            evacuations: Vec::new(),
            grown_in_interval: 0,
        }
    }

    /// The size the map reached: its live entries when read, else one more than at its last
    /// growth (the insert that made it grow), a lower bound.
    pub fn reached(&self) -> u64 {
        let grown = self.entries + 1;
        self.live.map_or(grown, |l| l.entries.max(grown))
    }

    /// Maps never shrink and never change type: a growth that could only start a map's life, on
    /// an address that already has one, is a new map at a recycled address.
    pub fn is_reused_by(&self, id: &MapIdentity, growth: &Growth) -> bool {
        if self.grow_events == 0 {
            return false;
        }
        if id.map_type != self.id.map_type {
            return true;
        }
        match (growth.detail, growth.kind) {
            (Detail::Classic { old_b, .. }, _) => self.b.is_some_and(|b| old_b < b),
            (_, GrowKind::Small) => true,
            (_, GrowKind::Table) => self.tables > 0,
            _ => false,
        }
    }

    /// Records `growth`, keeping at most `room` growths in the history (the latest once it is
    /// full below [`MAX_HISTORY`]). Returns the change in history entries.
    pub fn apply(&mut self, growth: &Growth, site: Site, ts: u64, room: usize) -> isize {
        self.site = site;
        match growth.detail {
            Detail::Classic { new_b, .. } => {
                self.b = Some(new_b);
                self.capacity = classic::capacity(new_b);
            }
            Detail::Swiss {
                table_capacity,
                dir_len,
            } => {
                self.dir_len = dir_len;
                match growth.kind {
                    GrowKind::Small => self.capacity = GROUP_SLOTS,
                    GrowKind::Table => {
                        self.capacity = 2 * GROUP_SLOTS;
                        self.tables = 1;
                    }
                    GrowKind::Grow => self.capacity += table_capacity,
                    _ => {
                        self.capacity += MAX_TABLE_CAPACITY;
                        self.tables += 1;
                    }
                }
            }
        }
        self.entries = growth.entries;
        self.grow_events += 1;
        if growth.kind.is_same_size() {
            self.same_size_grows += 1;
            self.same_size_bytes += growth.bytes;
        }
        self.bytes += growth.bytes;
        self.last_ns = ts;
        let before = self.history.len();
        if before < room.min(MAX_HISTORY) {
            self.history.push((ts, *growth));
        } else if room < MAX_HISTORY {
            // Short of room, the recent growths matter most (evacuations are matched to them).
            let excess = before + 1 - room.max(1);
            self.history.drain(..excess.min(before));
            self.history.push((ts, *growth));
            self.history.shrink_to(room.max(1));
        }
        self.history.len() as isize - before as isize
    }

    /// History and evacuation records this map holds, for the tracer's memory bound.
    pub fn records(&self) -> usize {
        self.history.len() + self.evacuations.len()
    }
}
