//! What bounds the heap between GC cycles, GOGC or the memory limit, and so what "give the GC
//! more room" means for this process. A GC that marks back to back because GOMEMLIMIT leaves
//! nothing above the live heap is not helped by a higher GOGC: the advice must name the limit.

use serde::Serialize;

use super::units::{bytes, count};
use crate::aggregate::{Aggregator, memory::GoalReadings};

/// GOGC (-1: off) and GOMEMLIMIT (`None`: unset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub gogc: i32,
    pub limit: Option<u64>,
}

/// The settings in effect at the end of the trace: the newest of the last cycle's reading and
/// the last reading of the runtime's accounting.
fn settings(agg: &Aggregator) -> Option<Settings> {
    let last_cycle = agg
        .gc()
        .last_cost()
        .map(|c| (c.ts_ns, c.gc_percent, c.memory_limit));
    let last_heap = agg
        .memory()
        .heap()
        .map(|h| (h.ts_ns, h.heap.gc_percent, h.heap.limit()));
    let newest = match (last_cycle, last_heap) {
        (Some(c), Some(h)) => Some(if h.0 >= c.0 { h } else { c }),
        (c, h) => c.or(h),
    };
    newest.map(|(_, gogc, limit)| Settings { gogc, limit })
}

/// What set the heap goal over the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Room {
    /// Readings of the runtime's accounting, by the setting that set the heap goal.
    pub heap_goal_set_by: GoalReadings,
    /// Cycles read that ran with the GC CPU limiter on, of those whose limiter was read.
    pub limiter_cycles: u64,
    #[serde(skip)]
    limiter_read: u64,
    /// GOGC and GOMEMLIMIT at the end of the trace.
    #[serde(skip)]
    pub settings: Option<Settings>,
    /// The live heap at the last reading.
    #[serde(skip)]
    live_bytes: Option<u64>,
}

/// Which setting to change for more room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    /// GOMEMLIMIT sets the goal; `tight` when it leaves (nearly) nothing above the live heap.
    Limit {
        limit: u64,
        tight: bool,
    },
    Gogc(i32),
    Unknown,
}

impl Room {
    pub fn new(agg: &Aggregator) -> Self {
        let limiter = agg
            .gc()
            .cycles()
            .iter()
            .filter_map(|c| c.cost.as_ref()?.limiter);
        let (on, read) = limiter.fold((0, 0), |(on, read), l| (on + u64::from(l), read + 1));
        Self {
            heap_goal_set_by: agg.memory().goal_readings(),
            limiter_cycles: on,
            limiter_read: read,
            settings: settings(agg),
            live_bytes: agg.memory().heap().map(|h| h.heap.heap_marked),
        }
    }

    fn bound(&self) -> Bound {
        let r = &self.heap_goal_set_by;
        let by_limit = r.by_limit();
        match self.settings {
            Some(Settings {
                limit: Some(limit), ..
            }) if self.limiter_cycles > 0 || by_limit * 2 > r.total() => Bound::Limit {
                limit,
                tight: self.limiter_cycles > 0 || r.live_heap * 2 > by_limit,
            },
            Some(s) if s.gogc >= 0 && r.total() > 0 => Bound::Gogc(s.gogc),
            _ => Bound::Unknown,
        }
    }

    /// How to give the GC more room, for a sentence that goes on "…; or ".
    pub fn advice(&self) -> String {
        match self.bound() {
            Bound::Limit { limit, tight: true } => {
                let live = self
                    .live_bytes
                    .map(|b| format!(" the {} the GC finds live", bytes(b)))
                    .unwrap_or_else(|| " the live heap".to_owned());
                let relation = if self.live_bytes.is_some_and(|b| limit < b) {
                    "below"
                } else {
                    "barely above"
                };
                let limiter = self
                    .limiter_phrase()
                    .map(|l| format!(", and {l}"))
                    .unwrap_or_default();
                format!(
                    "give the GC room: GOMEMLIMIT {} is {relation}{live}{limiter}, so the GC marks almost back to back; raise the limit well above the live heap (a higher GOGC does not help while the limit sets the goal)",
                    bytes(limit),
                )
            }
            Bound::Limit {
                limit,
                tight: false,
            } => format!(
                "give the GC more room: GOMEMLIMIT {} set the heap goal at {} of {} readings, below what GOGC allows; raise the limit, so that it marks less often",
                bytes(limit),
                count(self.heap_goal_set_by.by_limit()),
                count(self.heap_goal_set_by.total()),
            ),
            Bound::Gogc(p) => format!(
                "give the GC more room (GOGC is {p}: a higher GOGC, or GOGC=off with a GOMEMLIMIT the machine can hold) so that it marks less often"
            ),
            Bound::Unknown => {
                "give the GC more room (a higher GOGC, or a GOMEMLIMIT) so that it marks less often"
                    .to_owned()
            }
        }
    }

    /// For the GC cost line: what set the goal, when the memory limit had a part in it.
    pub fn summary(&self) -> Option<String> {
        let r = &self.heap_goal_set_by;
        let by_limit = r.by_limit();
        let mut parts = Vec::new();
        if by_limit > 0 {
            let at_live = match r.live_heap {
                0 => String::new(),
                n => format!(", at the live heap itself at {}", count(n)),
            };
            parts.push(format!(
                "the memory limit set the heap goal at {} of {} readings{at_live}",
                count(by_limit),
                count(r.total())
            ));
        }
        parts.extend(self.limiter_phrase());
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn limiter_phrase(&self) -> Option<String> {
        (self.limiter_cycles > 0).then(|| {
            format!(
                "the GC CPU limiter capped the GC in {} of {} cycles",
                count(self.limiter_cycles),
                count(self.limiter_read)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn room(gogc: i32, limit: Option<u64>, readings: [u64; 3], limiter: (u64, u64)) -> Room {
        Room {
            heap_goal_set_by: GoalReadings {
                gogc: readings[0],
                memory_limit: readings[1],
                live_heap: readings[2],
            },
            limiter_cycles: limiter.0,
            limiter_read: limiter.1,
            settings: Some(Settings { gogc, limit }),
            live_bytes: Some(64 * MIB),
        }
    }

    #[test]
    fn a_limit_below_the_live_heap_is_named_not_gogc() {
        let r = room(100, Some(16 * MIB), [0, 0, 3], (40, 110));
        assert_eq!(
            r.advice(),
            "give the GC room: GOMEMLIMIT 16.0 MiB is below the 64.0 MiB the GC finds live, and \
             the GC CPU limiter capped the GC in 40 of 110 cycles, so the GC marks almost back to \
             back; raise the limit well above the live heap (a higher GOGC does not help while \
             the limit sets the goal)"
        );
        assert_eq!(
            r.summary().as_deref(),
            Some(
                "the memory limit set the heap goal at 3 of 3 readings, at the live heap itself at 3; \
                 the GC CPU limiter capped the GC in 40 of 110 cycles"
            )
        );
    }

    #[test]
    fn a_limit_that_binds_with_room_says_raise_it() {
        let r = room(100, Some(96 * MIB), [1, 4, 0], (0, 10));
        assert_eq!(
            r.advice(),
            "give the GC more room: GOMEMLIMIT 96.0 MiB set the heap goal at 4 of 5 readings, \
             below what GOGC allows; raise the limit, so that it marks less often"
        );
    }

    #[test]
    fn gogc_sets_the_goal_when_the_limit_is_far() {
        let r = room(100, Some(1 << 30), [5, 0, 0], (0, 10));
        assert_eq!(
            r.advice(),
            "give the GC more room (GOGC is 100: a higher GOGC, or GOGC=off with a GOMEMLIMIT \
             the machine can hold) so that it marks less often"
        );
        assert_eq!(r.summary(), None);
        let unread = Room::default();
        assert_eq!(
            unread.advice(),
            "give the GC more room (a higher GOGC, or a GOMEMLIMIT) so that it marks less often"
        );
    }
}
