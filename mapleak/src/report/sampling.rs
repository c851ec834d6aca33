//! How much of the trace each probe group saw, and the estimates scaled from it.

use serde::Serialize;

use crate::catalogue::ProbeGroup;

#[derive(Clone, Debug, Default, Serialize)]
pub struct SamplingSummary {
    /// `false` under `--exact`: every probe stayed attached whatever it cost.
    pub governor: bool,
    /// The budget, as a share of the target's CPU time.
    pub max_overhead: f64,
    /// Measured cost of one uprobe hit on this host.
    pub hit_cost_ns: u64,
    pub groups: Vec<GroupSampling>,
}

impl SamplingSummary {
    /// The sampling of probe group `group`, if it was traced.
    pub fn group(&self, group: ProbeGroup) -> Option<&GroupSampling> {
        self.groups.iter().find(|g| g.group == group)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupSampling {
    pub group: ProbeGroup,
    /// Share of the trace the group's probes were attached.
    pub attached_fraction: f64,
    /// Whether any count from this group is an estimate (it was detached part of the time).
    pub sampled: bool,
    pub hits: u64,
    /// Observed events, and each interval's events scaled by its attached share.
    pub observed_events: u64,
    pub estimated_events: u64,
    pub observed_bytes: u64,
    pub estimated_bytes: u64,
    /// The 95 % interval of each estimate, `[low, high]`, from how the windows' rates scatter
    /// (null when fewer than two windows saw work); `[observed, observed]` when not sampled.
    pub estimated_events_interval: Option<(u64, u64)>,
    pub estimated_bytes_interval: Option<(u64, u64)>,
    pub scaled_by: ScaledBy,
}

/// What a sampled group's counts were scaled by to estimate the whole trace's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaledBy {
    /// The heap bytes the target allocated inside the windows against all it allocated.
    Allocation,
    /// Its CPU time, less the probes' calibrated cost.
    Cpu,
    /// Attached time.
    Wall,
    /// Nothing was sampled.
    None,
}
