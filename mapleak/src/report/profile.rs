//! Every stack the trace saw growing maps, with what it grew: the input of the profile sinks
//! (pprof, flame graph), which show all of them, not the top N.

use super::sites::{Resolutions, StackFrame};
use crate::aggregate::Aggregator;

/// One distinct stack and the growth it made.
#[derive(Clone, Debug)]
pub struct ProfileSample {
    /// Innermost first; frames inlined into the next one are marked `inlined`. Empty when the
    /// stack could not be symbolized (or was not kept).
    pub frames: Vec<StackFrame>,
    pub grow_events: u64,
    pub grow_bytes: u64,
    /// Wall time goroutines spent in mark assists with this stack (the stack walked at the
    /// assist's return: its allocation, then the code that made it).
    pub assist_ns: u64,
}

/// The growth profile of one trace.
#[derive(Clone, Debug, Default)]
pub struct GrowthProfile {
    pub samples: Vec<ProfileSample>,
    /// When the trace started (Unix nanoseconds) and how long the probes were attached.
    pub time_unix_ns: u64,
    pub duration_ns: u64,
    /// Said when the growth probes were attached only part of the time: the values are what
    /// was seen, not scaled.
    pub sampled: Option<String>,
}

impl GrowthProfile {
    pub fn build(agg: &Aggregator, res: &Resolutions) -> Self {
        let mut samples: Vec<ProfileSample> = agg
            .sites()
            .filter(|(_, s)| s.grow_events > 0)
            .map(|(key, s)| ProfileSample {
                frames: res.frames(key).to_vec(),
                grow_events: s.grow_events,
                grow_bytes: s.bytes,
                assist_ns: 0,
            })
            .collect();
        // Largest first, then by frames: the same trace writes the same file.
        samples.sort_by(|a, b| {
            b.grow_bytes
                .cmp(&a.grow_bytes)
                .then_with(|| frames_key(&a.frames).cmp(&frames_key(&b.frames)))
        });
        Self {
            samples,
            ..Default::default()
        }
    }

    /// Adds every stack's assist time, as samples of their own: an assist's stack is an
    /// allocation's, not a growth's.
    pub fn add_assists(&mut self, agg: &Aggregator, res: &Resolutions) {
        let mut assists: Vec<ProfileSample> = agg
            .assists()
            .stacks()
            .filter(|(_, s)| s.total_ns > 0)
            .map(|(key, s)| ProfileSample {
                frames: res.frames(key).to_vec(),
                grow_events: 0,
                grow_bytes: 0,
                assist_ns: s.total_ns,
            })
            .collect();
        assists.sort_by(|a, b| {
            b.assist_ns
                .cmp(&a.assist_ns)
                .then_with(|| frames_key(&a.frames).cmp(&frames_key(&b.frames)))
        });
        self.samples.extend(assists);
    }

    pub fn total_events(&self) -> u64 {
        self.samples.iter().map(|s| s.grow_events).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.samples.iter().map(|s| s.grow_bytes).sum()
    }
}

fn frames_key(frames: &[StackFrame]) -> Vec<&str> {
    frames.iter().map(|f| f.pc.as_str()).collect()
}

/// A stack's frames grouped by address: each group is one pc, its inlined frames first and the
/// function they were inlined into last, as pprof's `Location.line` lists them.
pub fn locations(frames: &[StackFrame]) -> Vec<&[StackFrame]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, f) in frames.iter().enumerate() {
        if !f.inlined {
            out.push(&frames[start..=i]);
            start = i + 1;
        }
    }
    if start < frames.len() {
        out.push(&frames[start..]);
    }
    out
}
