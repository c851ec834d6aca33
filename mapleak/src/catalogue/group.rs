//! Probe groups: the probes the overhead governor switches together, and what each group
//! means to the plan, the session and the command line.

use clap::builder::PossibleValue;
use serde::Serialize;

use crate::inspect::MapImpl;

/// Probes switched on and off together by the overhead governor. The order is the report's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeGroup {
    /// Map growth: fires O(log n) times per map, but a program churning small maps hits it often.
    Growth,
    /// Stop-the-world: a few hits per GC cycle.
    Gc,
    /// Mark assists: about a hundred calls per GC cycle, ten to twenty times that while the GC
    /// CPU limiter is on; never per allocation.
    Assist,
    /// Map creation (opt-in): one hit per map made, a hot path in programs that churn maps.
    Create,
    /// Map assignment (opt-in): one hit per insert or update, the hottest path of all.
    Assign,
    /// Classic evacuation (opt-in): one hit per old bucket moved after a growth.
    Evacuate,
}

/// What the plan does when a function of the group cannot be probed in a binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenMissing {
    /// The binary cannot be traced at all.
    Refuse,
    /// The others are planned, and a note starting with this says what is lost.
    Note(&'static str),
    /// None of the group is planned: its probes only make sense together.
    DropGroup,
    /// The others are planned: a binary has only the variants its maps use.
    Skip,
}

impl ProbeGroup {
    pub const ALL: [ProbeGroup; 6] = [
        ProbeGroup::Growth,
        ProbeGroup::Gc,
        ProbeGroup::Assist,
        ProbeGroup::Create,
        ProbeGroup::Assign,
        ProbeGroup::Evacuate,
    ];

    /// The group called `name` (see [`ProbeGroup::name`]).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The name the report, the notes and `--probes` use (the JSON's).
    pub const fn name(self) -> &'static str {
        match self {
            ProbeGroup::Growth => "growth",
            ProbeGroup::Gc => "gc",
            ProbeGroup::Assist => "assist",
            ProbeGroup::Create => "create",
            ProbeGroup::Assign => "assign",
            ProbeGroup::Evacuate => "evacuate",
        }
    }

    /// `None` for a group attached by default; for one that fires on a hot path, and so is
    /// attached only when `--probes` names it, what it shows (the flag's help).
    pub const fn opt_in(self) -> Option<&'static str> {
        match self {
            ProbeGroup::Growth | ProbeGroup::Gc | ProbeGroup::Assist => None,
            ProbeGroup::Create => Some(
                "`runtime.makemap` and `makemap_small`: maps made per call site (finds map churn)",
            ),
            ProbeGroup::Assign => {
                Some("`runtime.mapassign*`: inserts and updates per map, counted in the kernel")
            }
            ProbeGroup::Evacuate => Some(
                "`runtime.evacuate*` (classic maps): how long each growth kept its old buckets alive",
            ),
        }
    }

    pub const fn when_missing(self) -> WhenMissing {
        match self {
            // Growth is what mapleak is for.
            ProbeGroup::Growth => WhenMissing::Refuse,
            ProbeGroup::Gc => WhenMissing::Note("GC pauses are not traced"),
            // Without gcAssistAlloc the other two have nothing to split; without one of them
            // the assists are still timed, only not split.
            ProbeGroup::Assist => WhenMissing::Note("mark assists are traced only in part"),
            // Maps made by one of the two would be missing from every count per call site.
            ProbeGroup::Create => WhenMissing::DropGroup,
            ProbeGroup::Assign | ProbeGroup::Evacuate => WhenMissing::Skip,
        }
    }

    /// Why an opt-in group the user asked for has nothing planned in a binary with `maps`;
    /// `None` for the default groups, whose losses the plan's notes already state.
    pub const fn unplanned(self, maps: MapImpl) -> Option<&'static str> {
        match (self, maps) {
            (ProbeGroup::Growth | ProbeGroup::Gc | ProbeGroup::Assist, _) => None,
            (ProbeGroup::Create, _) => {
                Some("map creation is not traced: runtime.makemap or makemap_small was not found")
            }
            (ProbeGroup::Assign, _) => {
                Some("map assignments are not counted: no runtime.mapassign function was found")
            }
            (ProbeGroup::Evacuate, MapImpl::Swiss) => Some(
                "evacuation is not traced: Swiss maps rehash a table at once, so no old array is kept alive",
            ),
            (ProbeGroup::Evacuate, MapImpl::Classic) => {
                Some("evacuation is not traced: no runtime.evacuate function was found")
            }
        }
    }
}

/// The groups `--probes` takes, first in the array (how many is the second), in report order.
static OPT_IN: ([ProbeGroup; ProbeGroup::ALL.len()], usize) = {
    let mut out = ProbeGroup::ALL;
    let (mut i, mut n) = (0, 0);
    while i < ProbeGroup::ALL.len() {
        if ProbeGroup::ALL[i].opt_in().is_some() {
            out[n] = ProbeGroup::ALL[i];
            n += 1;
        }
        i += 1;
    }
    (out, n)
};

/// `--probes`: the opt-in groups only (clap refuses a variant without a value).
impl clap::ValueEnum for ProbeGroup {
    fn value_variants<'a>() -> &'a [Self] {
        &OPT_IN.0[..OPT_IN.1]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        self.opt_in()
            .map(|help| PossibleValue::new(self.name()).help(help))
    }
}
