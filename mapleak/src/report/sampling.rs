//! How much of the trace each probe group saw, and the estimates scaled from it.

use serde::Serialize;

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
    /// The sampling of the probe group named `group`, if it was traced.
    pub fn group(&self, group: &str) -> Option<&GroupSampling> {
        self.groups.iter().find(|g| g.group == group)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GroupSampling {
    pub group: &'static str,
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
    /// What the windows' counts were scaled by: `allocation` (the heap bytes the target
    /// allocated inside the windows against all it allocated), `cpu` (its CPU time, less the
    /// probes' calibrated cost), `wall` (attached time), or `none` when nothing was sampled.
    pub scaled_by: &'static str,
}
