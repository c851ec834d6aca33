//! The trace loop: ring buffer → aggregator, interval reports, and a clean stop on Ctrl-C,
//! SIGTERM, `--duration` or the target's exit.

use std::{fs::File, io, os::fd::OwnedFd, path::PathBuf, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    time::{Instant, MissedTickBehavior},
};

use super::{
    TraceError,
    calibrate::HitCost,
    duty::DutyCycle,
    governor::Governor,
    live::LiveReader,
    loader::{self, ProbeGroup},
    target,
    work::WorkGauge,
};
use crate::{
    aggregate::{Aggregator, GcTracker, GoRules, StwRules, stacks},
    inspect::MapImpl,
    inspect::{self, Inspection},
    report::{
        Format, Interval, Reporter, StopReason, Summary, TraceMeta, findings,
        sampling::SamplingSummary, sites::Resolutions,
    },
};

pub struct TraceOptions {
    pub pid: u32,
    pub duration: Option<Duration>,
    pub interval: Duration,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub top: usize,
    pub ring_size: u32,
    /// Budget for what the probes may cost the target, as a share of its CPU time.
    pub max_overhead: f64,
    /// Governor off: every probe stays attached whatever it costs.
    pub exact: bool,
    /// Opt-in probes to attach besides the default ones.
    pub probes: Vec<OptInProbe>,
}

/// Probes that are off by default because they can fire on a hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptInProbe {
    /// `runtime.makemap` and `makemap_small`: maps made per call site (finds map churn).
    Create,
    /// `runtime.mapassign*`: inserts and updates per map, counted in the kernel.
    Assign,
    /// `runtime.evacuate*` (classic maps): how long each growth kept its old buckets alive.
    Evacuate,
}

/// The default groups, plus the opt-in ones this binary can have.
fn probe_groups(
    opts: &TraceOptions,
    inspection: &Inspection,
    notes: &mut Vec<String>,
) -> Vec<ProbeGroup> {
    let mut groups = ProbeGroup::DEFAULT.to_vec();
    let no_evacuation = if inspection.map_impl == MapImpl::Swiss {
        "evacuation is not traced: Swiss maps rehash a table at once, so no old array is kept alive"
    } else {
        "evacuation is not traced: no runtime.evacuate function was found"
    };
    let opt_in = [
        (
            OptInProbe::Create,
            ProbeGroup::Create,
            &inspection.create_probes,
            "map creation is not traced: runtime.makemap or makemap_small was not found",
        ),
        (
            OptInProbe::Evacuate,
            ProbeGroup::Evacuate,
            &inspection.evacuate_probes,
            no_evacuation,
        ),
        (
            OptInProbe::Assign,
            ProbeGroup::Assign,
            &inspection.assign_probes,
            "map assignments are not counted: no runtime.mapassign function was found",
        ),
    ];
    for (probe, group, sites, missing) in opt_in {
        if !opts.probes.contains(&probe) {
            continue;
        }
        if sites.is_empty() {
            notes.push(missing.into());
        } else {
            groups.push(group);
        }
    }
    groups
}

/// When the governor first judges the probes' cost, instead of waiting for the first interval.
const EARLY_CHECK: Duration = Duration::from_millis(50);

/// How often the ring buffer is drained: the kernel wakes mapleak only for a quarter-full
/// ring, so that probe hits do not each pay for a wake-up.
const DRAIN_PERIOD: Duration = Duration::from_millis(20);

/// Assumed when calibration fails: a uprobe hit on the slow end of what virtual machines show.
const FALLBACK_HIT_COST: Duration = Duration::from_micros(12);

pub async fn run(opts: TraceOptions) -> Result<Summary, TraceError> {
    let pid = opts.pid;
    target::check_exists(pid)?;
    super::privileges::check(pid)?;
    let exe_bytes = std::fs::read(target::exe_path(pid)).map_err(|source| {
        if target::check_exists(pid).is_err() {
            TraceError::NoSuchProcess(pid)
        } else {
            let path = target::exe_path(pid);
            TraceError::Inspect {
                pid,
                source: inspect::InspectError::Io { path, source },
            }
        }
    })?;
    let inspection = inspect::inspect_bytes(&target::exe_path(pid), &exe_bytes).map_err(
        |source| match source {
            inspect::InspectError::Io { .. } if target::check_exists(pid).is_err() => {
                TraceError::NoSuchProcess(pid)
            }
            source => TraceError::Inspect { pid, source },
        },
    )?;
    let mut reporter = Reporter::new(opts.format, sink(opts.output.as_ref())?);
    let mut notes = inspection.notes.clone();
    let bias = super::bias::load_bias(pid, inspection.first_load_vaddr);
    let mut config = inspection.config;
    config.target_tgid = pid;
    match bias {
        Some(bias) => {
            let at = |addr: Option<u64>| addr.map_or(0, |a| a + bias);
            config.numgc_addr = at(inspection.numgc_address);
            config.pause_start_addr = at(inspection.pause_start_address);
            config.gcphase_addr = at(inspection.gcphase_address);
        }
        None => notes.push(format!(
            "GC cycles are not numbered: pid {pid}'s executable mapping was not found"
        )),
    }
    let mut loaded = loader::load(&config, opts.ring_size)?;
    // Before attaching: calibration needs no target, and the trace's accounting starts at attach.
    let cost = loaded.calibrate().unwrap_or_else(|why| {
        notes.push(format!(
            "uprobe cost not calibrated ({why}); assuming {} µs per hit",
            FALLBACK_HIT_COST.as_micros()
        ));
        HitCost::new(FALLBACK_HIT_COST.as_nanos() as f64)
    });
    let hit_cost = Duration::from_nanos(cost.hit_ns as u64);
    log::debug!("calibrated: {cost:?}");

    // Opened before attaching so that an exit during start-up is still seen.
    let exited = target::pidfd(pid).map_err(|_| TraceError::NoSuchProcess(pid))?;
    let groups = probe_groups(&opts, &inspection, &mut notes);
    loaded.attach(&inspection, pid, &groups)?;
    let started = Instant::now();
    let governor = (!opts.exact).then(|| Governor::new(opts.max_overhead, cost));
    let gc = GcTracker::new(StwRules::new(&inspection.version));
    let rules = GoRules::new(&inspection.version, &inspection.build);
    let mut agg = Aggregator::new(rules).with_gc(gc);
    let gc_controller = |offset: Option<u64>| {
        inspection
            .gc_controller_address
            .zip(offset)
            .zip(bias)
            .map(|((addr, off), bias)| addr + off + bias)
    };
    let gauge = WorkGauge::new(pid, gc_controller(inspection.total_alloc_offset));
    let mut duty = DutyCycle::new(
        governor,
        started,
        &loaded,
        &agg,
        opts.interval,
        &groups,
        gauge,
    );
    if let Err(note) = loaded.attach_syscalls() {
        notes.push(note);
    }
    super::privileges::drop_after_attach(!opts.exact);
    let ring = loaded.take_events()?;
    // Before the banner: whoever reacts to it with Ctrl-C must get the final report.
    let stops = Stops {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    };
    announce(&inspection, pid, hit_cost, &opts);

    let heap_marked = gc_controller(inspection.heap_marked_offset);
    let swiss = inspection.map_impl == MapImpl::Swiss;
    let live = LiveReader::new(pid, config, swiss, rules, heap_marked);
    let stop = pump(
        &opts,
        &mut loaded,
        ring,
        exited,
        &mut agg,
        &mut reporter,
        &mut duty,
        stops,
        started,
        &live,
    )
    .await?;
    let counters = loaded.counters();
    // Dropping the object detaches every probe before the report is written.
    drop(loaded);
    let unstacked = agg.stacks().dropped;
    if unstacked > 0 {
        notes.push(format!(
            "{unstacked} record(s) have no call site: mapleak keeps {} distinct stacks",
            stacks::MAX_STACKS
        ));
    }
    let meta = TraceMeta {
        pid,
        go_version: inspection.go_version.clone(),
        map_impl: inspection.map_impl.as_str(),
        duration_ns: started.elapsed().as_nanos() as u64,
        stop,
        notes,
    };
    let sampling = SamplingSummary {
        governor: duty.governed(),
        max_overhead: opts.max_overhead,
        hit_cost_ns: hit_cost.as_nanos() as u64,
        groups: duty.sampler.summary(),
    };
    let mut summary = Summary::new(&meta, &agg, &counters, opts.top, sampling);
    // Symbolized from the executable's bytes as the trace began (it may have been replaced on
    // disk since; /proc/PID/exe is gone once the target exits).
    let elf = inspect::GoElf::parse(&inspection.path, &exe_bytes).ok();
    let mut resolver = super::stacks::StackResolver {
        stacks: agg.stacks(),
        symbolizer: elf.and_then(|e| {
            inspect::symbolize::Symbolizer::for_elf(&e, inspection.version.minor).ok()
        }),
        bias: bias.unwrap_or(0),
    };
    let res = Resolutions::build(&agg, |s| resolver.resolve(s));
    summary.sites = crate::report::sites::sites(&agg, &res, opts.top);
    let share = |name: &str| {
        summary
            .sampling
            .groups
            .iter()
            .find(|g| g.group == name)
            .map(|g| g.attached_fraction)
    };
    summary.findings = findings::findings(&findings::Inputs {
        agg: &agg,
        res: &res,
        swiss: inspection.map_impl == MapImpl::Swiss,
        go_minor: inspection.version.minor,
        duration_ns: summary.duration_ns,
        growth_share: share("growth").unwrap_or(1.0),
        create_share: share("create"),
    });
    reporter.summary(&summary)?;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    opts: &TraceOptions,
    loaded: &mut loader::Loaded,
    ring: RingBuf<MapData>,
    exited: OwnedFd,
    agg: &mut Aggregator,
    reporter: &mut Reporter,
    duty: &mut DutyCycle,
    mut stops: Stops,
    started: Instant,
    live: &LiveReader,
) -> Result<StopReason, TraceError> {
    let mut ring = register(ring)?;
    let exited = register(exited)?;
    let mut ticker = tokio::time::interval_at(started + opts.interval, opts.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut drains = tokio::time::interval(DRAIN_PERIOD);
    drains.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let deadline = opts.duration.map(|d| started + d);
    let mut early =
        (duty.governed() && opts.interval > 2 * EARLY_CHECK).then(|| started + EARLY_CHECK);
    // A first sample, so that a target that exits within the first interval still has one.
    live.sample(agg);
    let stop = loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), agg);
                guard.clear_ready();
            }
            _ = drains.tick() => {
                drain(ring.get_mut(), agg);
                duty.refresh_work();
            }
            _ = sleep_until(duty.next_toggle()) => {
                // Count everything the attached stretch produced before switching.
                drain(ring.get_mut(), agg);
                let result = duty.toggle_due(Instant::now(), loaded);
                if let Some(stop) = switched(result, loaded.pid(), agg)? {
                    break stop;
                }
            }
            _ = sleep_until(early) => {
                // A first look well before the first interval ends: a target that the probes
                // would slow down is not left fully probed for a whole interval.
                early = None;
                drain(ring.get_mut(), agg);
                let result = duty.end_interval(Instant::now(), loaded, agg);
                if let Some(stop) = switched(result, loaded.pid(), agg)? {
                    break stop;
                }
            }
            _ = ticker.tick() => {
                drain(ring.get_mut(), agg);
                sample(live, loaded, agg);
                let stats = agg.take_interval();
                let elapsed = started.elapsed().as_nanos() as u64;
                let result = duty.end_interval(Instant::now(), loaded, agg);
                if let Some(stop) = switched(result, loaded.pid(), agg)? {
                    break stop;
                }
                reporter.interval(&Interval::new(elapsed, &stats, agg, &loaded.counters()))?;
            }
            _ = stops.interrupt.recv() => break StopReason::Interrupted,
            _ = stops.terminate.recv() => break StopReason::Interrupted,
            _ = sleep_until(deadline) => break StopReason::Duration,
            _ = exited.readable() => break StopReason::TargetExited,
        }
    };
    // Events submitted before the stop are still queued: take them all, and close the last
    // (partial) interval's accounting.
    drain(ring.get_mut(), agg);
    agg.take_interval();
    duty.take_governor();
    // With the governor gone nothing is attached here, so only a vanished target can fail it.
    let _ = duty.end_interval(Instant::now(), loaded, agg);
    // The target is still there unless it exited: its maps' final sizes, read once more.
    sample(live, loaded, agg);
    // Evacuations the next growth has not closed: finished if the map's old array is gone
    // (unknown, so not claimed, once the target has exited).
    for e in loaded.evacuating() {
        let finished = live
            .old_buckets(e.map)
            .is_some_and(|now| now != e.old_buckets);
        agg.on_evacuated(&e, finished);
    }
    Ok(stop)
}

/// What is read from the target and the kernel's maps rather than streamed: memory, live map
/// sizes, assignment counts.
fn sample(live: &LiveReader, loaded: &loader::Loaded, agg: &mut Aggregator) {
    live.sample(agg);
    agg.set_assigns(&loaded.assigns());
}

/// The signals that end a trace with its report.
struct Stops {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

/// Ends a duty-cycle switch: a switched GC group leaves no half-seen pause behind, and a target
/// that is gone (probes cannot be attached to it) ends the trace.
fn switched(
    result: Result<Vec<ProbeGroup>, TraceError>,
    pid: u32,
    agg: &mut Aggregator,
) -> Result<Option<StopReason>, TraceError> {
    match result {
        Ok(groups) => {
            gaps(&groups, agg);
            Ok(None)
        }
        Err(_) if !target::is_alive(pid) => Ok(Some(StopReason::TargetExited)),
        Err(e) => Err(e),
    }
}

/// A switched GC group leaves no half-seen pause behind to be misattributed later.
fn gaps(groups: &[ProbeGroup], agg: &mut Aggregator) {
    if groups.contains(&ProbeGroup::Gc) {
        agg.gc_gap();
    }
}

fn drain(ring: &mut RingBuf<MapData>, agg: &mut Aggregator) {
    while let Some(record) = ring.next() {
        agg.record_bytes(&record);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn register<T: std::os::fd::AsRawFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its fd and keeps it open for as long as the AsyncFd holds it.
    unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }.map_err(|e| e.into())
}

fn sink(output: Option<&PathBuf>) -> Result<Box<dyn io::Write + Send>, TraceError> {
    Ok(match output {
        Some(path) => Box::new(io::BufWriter::new(File::create(path)?)),
        None => Box::new(io::stdout()),
    })
}

fn announce(inspection: &Inspection, pid: u32, hit_cost: Duration, opts: &TraceOptions) {
    let probes: Vec<String> = inspection
        .probes
        .iter()
        .map(|p| format!("{}+{:#x}", p.symbol, p.post_prologue))
        .collect();
    eprintln!(
        "mapleak: tracing pid {pid} ({}, {} maps): {} probe(s) attached ({}); Ctrl-C to stop",
        inspection.go_version,
        inspection.map_impl.as_str(),
        probes.len(),
        probes.join(", ")
    );
    if opts.exact {
        eprintln!(
            "mapleak: exact mode: every probe stays attached whatever it costs (one hit ≈ {:.1} µs here)",
            hit_cost.as_nanos() as f64 / 1e3
        );
    } else {
        eprintln!(
            "mapleak: one uprobe hit costs {:.1} µs here; probes are duty-cycled to keep the target's overhead under {}%",
            hit_cost.as_nanos() as f64 / 1e3,
            opts.max_overhead * 100.0
        );
    }
}
