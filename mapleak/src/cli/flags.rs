//! The trace's flags, shared by `mapleak trace` and `mapleak run`.

use std::{path::PathBuf, time::Duration};

use crate::{catalogue::ProbeGroup, report::Format, trace::TraceOptions};

/// How `inspect` and `ps` print what they found: they make no report, so they have their own
/// choice, which the trace's report formats (pprof, flame graphs) do not widen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Listing {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct TraceFlags {
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C or the target exits.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// How often to print the live view.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    interval: Duration,
    /// `text` for people, `json` for JSON Lines (interval objects, then one summary).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Also write the map growth as a pprof profile (gzipped profile.proto) for `go tool
    /// pprof`, Pyroscope or speedscope: every stack, sample types grow_events and grow_space.
    #[arg(long, value_name = "FILE")]
    pprof: Option<PathBuf>,
    /// Also write the map growth as an interactive SVG flame graph of the bytes grown.
    #[arg(long, value_name = "FILE.svg")]
    flamegraph: Option<PathBuf>,
    /// Maps listed in the final report.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Ring buffer size in bytes: a power of two from 4096 to 64 MiB (67108864).
    #[arg(long, default_value_t = 4 << 20, value_parser = parse_ring_size)]
    ring_size: u32,
    /// Most the probes may cost the target, in percent of its CPU time; busier probe groups
    /// are attached only part of the time and their counts reported as estimates. `trace`: 1
    /// unless given. `run`: none unless given — a program mapleak starts is being measured, so
    /// every probe stays attached and every count is exact.
    #[arg(long, value_parser = parse_percent)]
    max_overhead: Option<f64>,
    /// Keep every probe attached whatever it costs (exact counts; for debugging and tests).
    #[arg(long)]
    exact: bool,
    /// Opt-in probes, comma-separated. `create`: map creation per call site (finds maps made
    /// and dropped at a high rate); `assign`: inserts and updates per map; `evacuate` (classic
    /// maps): how long each growth kept the old buckets alive. All are hot paths, duty-cycled
    /// under --max-overhead like the others.
    #[arg(long, value_enum, value_delimiter = ',')]
    probes: Vec<ProbeGroup>,
    /// The Go release that built the target (e.g. 1.26.5), for binaries whose version cannot
    /// be recovered; it must agree with the binary's layout.
    #[arg(long, value_name = "VERSION")]
    go_version: Option<String>,
    /// Test-only: fix a probe group's attached share (`gc=0.3`), whatever it costs, so that
    /// tests of the switching do not depend on how fast the machine is.
    #[arg(long, hide = true, value_delimiter = ',', value_parser = parse_duty)]
    duty: Vec<(ProbeGroup, f64)>,
}

impl TraceFlags {
    /// Whether the command line sets the overhead budget (a budget or a duty cycle).
    pub fn budget_given(&self) -> bool {
        self.max_overhead.is_some() || !self.duty.is_empty()
    }

    pub fn options(self, pid: u32) -> TraceOptions {
        TraceOptions {
            pid,
            duration: self.duration,
            interval: self.interval,
            format: self.format,
            output: self.output,
            pprof: self.pprof,
            flamegraph: self.flamegraph,
            top: self.top,
            ring_size: self.ring_size,
            max_overhead: self.max_overhead.unwrap_or(DEFAULT_BUDGET),
            exact: self.exact,
            probes: self.probes,
            forced_duty: self.duty,
            go_version: self.go_version,
            report_to_stderr: false,
            launched: false,
        }
    }
}

fn parse_duty(s: &str) -> Result<(ProbeGroup, f64), String> {
    let (group, share) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not GROUP=SHARE"))?;
    let group = ProbeGroup::named(group).ok_or_else(|| format!("no probe group {group:?}"))?;
    let share: f64 = share
        .parse()
        .ok()
        .filter(|v: &f64| *v > 0.0 && *v <= 1.0)
        .ok_or_else(|| format!("{share:?} is not a share above 0 and at most 1"))?;
    Ok((group, share))
}

/// `trace`'s budget when none is given: 1 % of the target's CPU time, as a share.
const DEFAULT_BUDGET: f64 = 0.01;

/// The smallest budget the governor can keep: below it, the shortest attached window it allows
/// already costs more.
const MIN_PERCENT: f64 = 0.01;

fn parse_percent(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if !(MIN_PERCENT..=100.0).contains(&p) {
        return Err(format!(
            "the overhead budget must be from {MIN_PERCENT}% to 100%"
        ));
    }
    Ok(p / 100.0)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("a trace of no time traces nothing: give a duration above 0".into());
    }
    Ok(d)
}

/// Reports come at least once a day: the interval is also the governor's accounting period.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(10) || d > MAX_INTERVAL {
        return Err("the interval must be from 10ms to 24h".into());
    }
    Ok(d)
}

/// A bigger ring only holds more events between two drains (every 20 ms); 64 MiB holds over
/// half a million growth records, and mapleak maps the ring twice.
const MAX_RING: u32 = 64 << 20;

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count"))?;
    match u32::try_from(n) {
        Ok(n) if (4096..=MAX_RING).contains(&n) && n.is_power_of_two() => Ok(n),
        _ => {
            Err("the ring size must be a power of two from 4096 bytes to 64 MiB (67108864)".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        flags: TraceFlags,
    }

    fn flags(args: &[&str]) -> TraceFlags {
        Flags::try_parse_from(std::iter::once("mapleak").chain(args.iter().copied()))
            .unwrap()
            .flags
    }

    #[test]
    fn the_budget_is_a_share_given_in_percent() {
        // The default is the percent a user would type, 1, as the governor's share, 0.01.
        let default = flags(&[]);
        assert!(!default.budget_given());
        assert_eq!(default.options(1).max_overhead, 0.01);
        let given = flags(&["--max-overhead", "10"]);
        assert!(given.budget_given());
        assert_eq!(given.options(1).max_overhead, 0.1);
        assert!(flags(&["--duty", "growth=0.5"]).budget_given());
    }
}
