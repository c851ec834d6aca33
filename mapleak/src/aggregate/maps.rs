//! Per-map-instance state, for either map implementation.

use mapleak_common::StackRef;

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
    pub site: StackRef,
    /// The map's hash seed when this growth was read (see [`MapState::is_reused_by`]).
    pub seed: u64,
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
    /// Swiss: the capacity of its only table after the last growth; 0 while it is small or
    /// once it has a directory of several entries.
    pub table_capacity: u64,
    /// Its hash seed at the last growth.
    pub seed: u64,
    /// Entries when the map last grew.
    pub entries: u64,
    /// Slots after the last growth. Swiss maps first seen mid-life count only what was seen.
    pub capacity: u64,
    pub grow_events: u64,
    pub same_size_grows: u64,
    pub bytes: u64,
    pub same_size_bytes: u64,
    /// Where the last growth came from.
    pub site: StackRef,
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
            table_capacity: 0,
            seed: id.seed,
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

    /// Whether `growth`, read at this map's address, is a new map's: one made there after this
    /// one was freed.
    ///
    /// Maps never shrink and never change type, so a growth that could only start a map's life
    /// is a new map. So is a growth with another hash seed: every `make` draws one. But
    /// `clear(m)` and the delete of a map's last entry draw one too (issue 25237: mapclear and
    /// mapdelete, `Map.Clear` and `Map.Delete`), and keep its bucket array or tables; when such
    /// a map grows again it starts exactly where its last growth left it. That growth is taken
    /// as the same map, emptied and refilled: a map reused with `clear(m)` is one map made once,
    /// and calling it many would advise the user to do what they already do. The price: a
    /// sized `make` whose hint happens to give exactly the shape a freed map of the same type
    /// ended with cannot be told from it here (the creation probe tells them apart).
    pub fn is_reused_by(&self, id: &MapIdentity, growth: &Growth) -> bool {
        if self.grow_events == 0 {
            return false;
        }
        if id.map_type != self.id.map_type || self.cannot_reach(growth) {
            return true;
        }
        id.seed != self.seed && !self.resumes(growth)
    }

    /// A growth this map cannot make: its B or a table's capacity would have gone down, or it
    /// would go back to a first group or table after having one (directories never shrink).
    fn cannot_reach(&self, growth: &Growth) -> bool {
        match (growth.detail, growth.kind) {
            (Detail::Classic { old_b, .. }, _) => self.b.is_some_and(|b| old_b < b),
            (_, GrowKind::Small) => true,
            (_, GrowKind::Table) => self.tables > 0 || self.dir_len > 0,
            (
                Detail::Swiss {
                    table_capacity,
                    dir_len,
                },
                _,
            ) => {
                // A split's directory may have doubled, so only a smaller one is impossible.
                dir_len < self.dir_len
                    || (self.dir_len == 1 && dir_len == 1 && table_capacity < self.table_capacity)
            }
        }
    }

    /// `growth` starts from exactly the shape this map's last growth left: the same B, or the
    /// same directory and (for a map of one table) the same table.
    fn resumes(&self, growth: &Growth) -> bool {
        match (growth.detail, growth.kind) {
            (Detail::Classic { old_b, .. }, _) => self.b == Some(old_b),
            (_, GrowKind::Small) => false,
            // Only a small map (a group, no directory) grows into its first table.
            (_, GrowKind::Table) => self.dir_len == 0 && self.tables == 0,
            (
                Detail::Swiss {
                    table_capacity,
                    dir_len,
                },
                kind,
            ) => {
                let same_directory = dir_len == self.dir_len
                    || (kind == GrowKind::Split && dir_len == 2 * self.dir_len);
                same_directory && (self.dir_len > 1 || table_capacity == self.table_capacity)
            }
        }
    }

    /// Records `growth` of map `id`, keeping at most `room` growths in the history (the latest
    /// once it is full below [`MAX_HISTORY`]). Returns the change in history entries.
    pub fn apply(&mut self, id: &MapIdentity, growth: &Growth, ts: u64, room: usize) -> isize {
        self.site = id.site;
        self.seed = id.seed;
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
                self.table_capacity = 0;
                match growth.kind {
                    GrowKind::Small => self.capacity = GROUP_SLOTS,
                    GrowKind::Table => {
                        self.capacity = 2 * GROUP_SLOTS;
                        self.tables = 1;
                        self.table_capacity = self.capacity;
                    }
                    GrowKind::Grow => {
                        self.capacity += table_capacity;
                        if dir_len == 1 {
                            self.table_capacity = 2 * table_capacity;
                        }
                    }
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
