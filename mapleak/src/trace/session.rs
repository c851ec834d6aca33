//! One trace, in three stages: [`start`] (inspect the pinned image, load, calibrate, attach),
//! [`pump`] (ring buffer → aggregator, interval reports, duty cycling) and [`finish`] (detach,
//! then the final report). Once the probes are attached nothing ends the trace without its
//! report: a failure becomes the stop reason, with a note saying what happened.

use std::{os::fd::OwnedFd, path::PathBuf, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    time::{Instant, MissedTickBehavior},
};

use super::{
    TraceError,
    calibrate::HitCost,
    duty::{DutyCycle, Switched},
    governor::Governor,
    launch::Launched,
    live::{GcController, LiveReader},
    loader, register,
    signals::Stops,
    target::{self, Image},
    work::WorkGauge,
};
use crate::{
    aggregate::{Aggregator, GcTracker, GoRules, StwRules, stacks},
    catalogue::ProbeGroup,
    inspect::{self, Inspection},
    report::{
        Format, Interval, StopReason, Summary, TraceMeta, build,
        file::ReportFile,
        sampling::SamplingSummary,
        sink::{FlamegraphSink, PprofSink, ReportSink, Sink, SinkError},
    },
};

pub struct TraceOptions {
    pub pid: u32,
    pub duration: Option<Duration>,
    pub interval: Duration,
    pub format: Format,
    pub output: Option<PathBuf>,
    /// Profiles of every stack's growth: pprof (gzipped profile.proto) and an SVG flame graph.
    pub pprof: Option<PathBuf>,
    pub flamegraph: Option<PathBuf>,
    pub top: usize,
    pub ring_size: u32,
    /// Budget for what the probes may cost the target, as a share of its CPU time.
    pub max_overhead: f64,
    /// Governor off: every probe stays attached whatever it costs.
    pub exact: bool,
    /// Opt-in probe groups to attach besides the default ones.
    pub probes: Vec<ProbeGroup>,
    /// Attached shares fixed for some groups, whatever the budget (for tests of the switching
    /// itself; hidden from the help).
    pub forced_duty: Vec<(ProbeGroup, f64)>,
    /// Standard output is the traced command's (`mapleak run`): the report goes to stderr.
    pub report_to_stderr: bool,
    /// The target was started by mapleak and is traced until it exits.
    pub launched: bool,
    /// The Go release the user named (`--go-version`), for binaries whose version cannot be
    /// recovered.
    pub go_version: Option<String>,
}

/// The default groups, plus the opt-in ones asked for that this binary has.
fn probe_groups(
    opts: &TraceOptions,
    inspection: &Inspection,
    notes: &mut Vec<String>,
) -> Vec<ProbeGroup> {
    let mut groups = Vec::new();
    for group in ProbeGroup::ALL {
        if group.opt_in().is_some() && !opts.probes.contains(&group) {
            continue;
        }
        let planned = inspection.probes.iter().any(|s| s.group() == group);
        match group.unplanned(inspection.map_impl) {
            Some(why) if !planned => notes.push(why.into()),
            _ => groups.push(group),
        }
    }
    groups
}

/// How often the ring buffer is drained: the kernel wakes mapleak only for a quarter-full
/// ring, so that probe hits do not each pay for a wake-up.
const DRAIN_PERIOD: Duration = Duration::from_millis(20);

/// Assumed when calibration fails: a uprobe hit on the slow end of what virtual machines show.
const FALLBACK_HIT_COST: Duration = Duration::from_micros(12);

/// How a trace ended, and whether that is a failure the exit status must show.
pub struct Outcome {
    pub summary: Summary,
    /// Set when the trace stopped for a reason other than the user's, the clock or the target:
    /// the report was written (as far as the output allowed) but the exit status is 1.
    pub failure: Option<String>,
}

/// Everything the event loop and the report need once the probes are attached.
struct Attached {
    pid: u32,
    image: Image,
    inspection: Inspection,
    loaded: loader::Loaded,
    agg: Aggregator,
    duty: DutyCycle,
    live: LiveReader,
    /// The report (first) and the profiles.
    sinks: Vec<Box<dyn Sink>>,
    notes: Vec<String>,
    hit_cost: Duration,
    bias: Option<u64>,
    /// Whether the exec tracepoint is attached; without it an exec is found by polling.
    exec_traced: bool,
    /// Groups that could not be attached again: how often, and the first failure.
    attach_failures: std::collections::BTreeMap<ProbeGroup, (u64, String)>,
    started: Instant,
}

/// Traces `opts.pid` until it exits, the clock runs out or a signal says stop. `launched` is the
/// command `mapleak run` started, held at its first instruction until the probes are in; the
/// signals sent to mapleak then go on to it instead of ending the trace.
pub async fn run(
    opts: TraceOptions,
    mut launched: Option<&mut Launched>,
    stops: &mut Stops,
) -> Result<Outcome, TraceError> {
    let (mut attached, streams) = start(&opts)?;
    let resumed = match launched.as_deref_mut().map(Launched::resume) {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    };
    let stop = match resumed {
        Ok(()) => {
            let stop = pump(&opts, &mut attached, streams, stops, launched.as_deref()).await;
            let short = stop.at - attached.started < opts.interval;
            if let (Some(command), StopReason::TargetExited, true) =
                (launched.as_deref(), stop.reason, short)
                && let Some(peak) = command.peak_rss()
            {
                attached.agg.memory_mut().sample_rss(peak, 0);
                attached.notes.push(format!(
                    "RSS is the most the program had ({}), from its exit status: it exited before the first interval's reading",
                    crate::report::units::bytes(peak)
                ));
            }
            stop
        }
        Err(e) => {
            attached.notes.push(format!(
                "the command could not be let go after attaching: {e}"
            ));
            Stopped {
                reason: StopReason::Error,
                at: Instant::now(),
            }
        }
    };
    Ok(finish(&opts, attached, stop))
}

/// Inspects the pinned image, loads the kernel programs, calibrates and attaches. Every failure
/// here is one sentence and nothing stays attached (dropping what was loaded detaches it).
fn start(opts: &TraceOptions) -> Result<(Attached, Streams), TraceError> {
    let pid = opts.pid;
    target::check_traceable(pid)?;
    super::privileges::check(pid)?;
    let image = Image::pin(pid)?;
    let path = target::exe_path(pid);
    let inspection = inspect::inspect_bytes_as(&path, image.bytes(), opts.go_version.as_deref())
        .map_err(|source| {
            if target::is_alive(pid) {
                TraceError::Inspect { pid, source }
            } else {
                TraceError::NoSuchProcess(pid)
            }
        })?;
    // Before anything is attached, so that an unwritable destination costs the target nothing
    // and an earlier report under that name survives a failed start.
    let sinks = open_sinks(opts)?;
    let mut notes = inspection.notes.clone();
    let bias = super::bias::load_bias(pid, image.id().ino, inspection.first_load_vaddr);
    let mut config = inspection.config;
    config.target_tgid = pid;
    match bias {
        Some(bias) => {
            let at = |addr: Option<u64>| addr.map_or(0, |a| a + bias);
            config.numgc_addr = at(inspection.numgc_address);
            config.pause_start_addr = at(inspection.pause_start_address);
            config.gcphase_addr = at(inspection.gcphase_address);
            // Nothing of a struct whose address or offsets are unknown is read.
            if let (Some(layout), Some(work), Some(controller)) = (
                inspection.gc_cost_layout,
                inspection.work_address,
                inspection.gc_controller_address,
            ) {
                config.gc_cost = mapleak_common::GcCostLayout {
                    work_addr: work + bias,
                    controller_addr: controller + bias,
                    limiter_addr: at(inspection.gc_cpu_limiter_address),
                    ..layout
                };
            }
            config.limiter_enabled_addr = at(inspection.limiter_enabled_address);
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
    // Traced before the probes go in: an exec from here on ends the trace of this image.
    let exec_traced = match loaded.attach_exec() {
        Ok(()) => true,
        Err(note) => {
            log::debug!("{note}; polling /proc/{pid}/exe instead");
            false
        }
    };
    if super::signals::arrived() {
        return Err(TraceError::Interrupted);
    }
    if image.id().replaced_in(pid) {
        return Err(TraceError::ExecDuringStart(pid));
    }
    let groups = probe_groups(opts, &inspection, &mut notes);
    loaded.attach(&inspection, pid, &image, &groups)?;
    let started = Instant::now();
    let governor = (!opts.exact || !opts.forced_duty.is_empty()).then(|| {
        opts.forced_duty
            .iter()
            // With --exact the groups not forced stay attached: no cost is over an endless budget.
            .fold(
                Governor::new(
                    if opts.exact {
                        f64::INFINITY
                    } else {
                        opts.max_overhead
                    },
                    cost,
                ),
                |g, &(group, share)| g.force(group, share),
            )
    });
    let gc = GcTracker::new(StwRules::new(&inspection.version));
    let rules = GoRules::new(&inspection.version, &inspection.build);
    let mut agg = Aggregator::new(rules).with_gc(gc);
    agg.set_address_space_source(Box::new(move || target::address_bound(pid)));
    let gc_controller = |offset: Option<u64>| {
        inspection
            .gc_controller_address
            .zip(offset)
            .zip(bias)
            .map(|((addr, off), bias)| addr + off + bias)
    };
    let gauge = WorkGauge::new(
        pid,
        image.id(),
        gc_controller(inspection.total_alloc_offset),
    );
    let duty = DutyCycle::new(
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
    // Whoever switches probe groups (the governor, or a fixed duty cycle) attaches them again.
    let files = opts.output.is_some() || opts.pprof.is_some() || opts.flamegraph.is_some();
    super::privileges::drop_after_attach(duty.governed(), loaded.mode(), files);
    let ring = loaded.take_events()?;
    let live = LiveReader::new(
        pid,
        image.id(),
        config,
        inspection.map_impl,
        rules,
        inspection
            .gc_controller_address
            .zip(bias)
            .map(|(addr, bias)| GcController {
                address: addr + bias,
                fields: inspection.gc_controller_fields,
                go_minor: inspection.version.minor,
            }),
    );
    announce(&inspection, &loaded, pid, hit_cost, opts);
    let attached = Attached {
        pid,
        image,
        inspection,
        loaded,
        agg,
        duty,
        live,
        sinks,
        notes,
        hit_cost,
        bias,
        exec_traced,
        attach_failures: Default::default(),
        started,
    };
    Ok((attached, Streams { ring, exited }))
}

/// What the event loop waits on besides its timers and signals.
struct Streams {
    ring: RingBuf<MapData>,
    /// The target's pidfd: readable once it exits.
    exited: OwnedFd,
}

/// Why the event loop ended, and when.
struct Stopped {
    reason: StopReason,
    at: Instant,
}

async fn pump(
    opts: &TraceOptions,
    t: &mut Attached,
    streams: Streams,
    stops: &mut Stops,
    launched: Option<&Launched>,
) -> Stopped {
    let mut ring = None;
    let result = match (register(streams.ring), register(streams.exited)) {
        (Ok(r), Ok(exited)) => event_loop(opts, t, ring.insert(r), &exited, stops, launched).await,
        (Err(e), _) | (_, Err(e)) => Err(e.into()),
    };
    let stop = result.unwrap_or_else(|e| {
        t.notes.push(format!(
            "the trace stopped early: {}",
            super::error_chain(&e)
        ));
        StopReason::Error
    });
    let at = Instant::now();
    let Attached {
        loaded,
        agg,
        duty,
        live,
        ..
    } = t;
    // Events submitted before the stop are still queued: take them all, and close the last
    // (partial) interval's accounting.
    if let Some(ring) = &mut ring {
        drain(ring.get_mut(), agg);
    }
    agg.take_interval();
    duty.take_governor();
    // With the governor gone nothing is attached here.
    let _ = duty.end_interval(at, loaded, agg);
    // The target is still there unless it exited: its maps' final sizes, read once more (not
    // after an exec: the addresses belong to the old image).
    sample(live, loaded, agg);
    // Evacuations the next growth has not closed: finished if the map's old array is gone
    // (unknown, so not claimed, once the target has exited).
    for e in loaded.evacuating() {
        let finished = live
            .old_buckets(e.map)
            .is_some_and(|now| now != e.old_buckets);
        agg.on_evacuated(&e, finished);
    }
    Stopped { reason: stop, at }
}

async fn event_loop(
    opts: &TraceOptions,
    t: &mut Attached,
    ring: &mut AsyncFd<RingBuf<MapData>>,
    exited: &AsyncFd<OwnedFd>,
    stops: &mut Stops,
    launched: Option<&Launched>,
) -> Result<StopReason, TraceError> {
    let started = t.started;
    let mut ticker = tokio::time::interval_at(started + opts.interval, opts.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut drains = tokio::time::interval(DRAIN_PERIOD);
    drains.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // A duration too long to add to the clock is no deadline at all.
    let deadline = opts.duration.and_then(|d| started.checked_add(d));
    // A first sample, so that a target that exits within the first interval still has one.
    t.live.sample(&mut t.agg);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut t.agg);
                guard.clear_ready();
            }
            _ = drains.tick() => {
                drain(ring.get_mut(), &mut t.agg);
                t.duty.refresh_work();
                if !t.exec_traced && t.image.id().replaced_in(t.pid) {
                    return Ok(exec_stop(t));
                }
            }
            _ = sleep_until(t.duty.next_toggle()) => {
                // Count everything the attached stretch produced before switching.
                drain(ring.get_mut(), &mut t.agg);
                let result = t.duty.toggle_due(Instant::now(), &mut t.loaded);
                if let Some(stop) = switched(t, result) {
                    return Ok(stop);
                }
            }
            _ = sleep_until(t.duty.next_judgement()) => {
                // The governor judges often, the first time well before the first interval
                // ends: a target that the probes would slow down is not left fully probed for
                // long, and a change in its work is caught within a slice.
                drain(ring.get_mut(), &mut t.agg);
                let result = t.duty.end_interval(Instant::now(), &mut t.loaded, &t.agg);
                if let Some(stop) = switched(t, result) {
                    return Ok(stop);
                }
            }
            _ = ticker.tick() => {
                drain(ring.get_mut(), &mut t.agg);
                sample(&t.live, &t.loaded, &mut t.agg);
                let stats = t.agg.take_interval();
                // The tick this is, not the instant the loop got to it: intervals are labelled
                // 1 s, 2 s … however late a busy machine runs the loop.
                let period = opts.interval.as_nanos() as u64;
                let late = started.elapsed().as_nanos() as u64 + period / 2;
                let elapsed = late / period * period;
                if !t.duty.governed() {
                    let result = t.duty.end_interval(Instant::now(), &mut t.loaded, &t.agg);
                    if let Some(stop) = switched(t, result) {
                        return Ok(stop);
                    }
                }
                let interval = Interval::new(elapsed, &stats, &t.agg, &t.loaded.counters());
                for sink in &mut t.sinks {
                    if let Err(e) = sink.interval(&interval) {
                        return Ok(output_failed(&mut t.notes, e));
                    }
                }
            }
            arrival = stops.next() => match (arrival?, launched) {
                (arrival, Some(command)) => command.pass_on(arrival),
                (_, None) => return Ok(StopReason::Interrupted),
            },
            _ = sleep_until(deadline) => return Ok(StopReason::Duration),
            _ = exited.readable() => return Ok(StopReason::TargetExited),
        }
        if t.agg.exec_ns().is_some() {
            return Ok(exec_stop(t));
        }
    }
}

/// The target executed another program: its image, and every probe planned for it, is gone.
fn exec_stop(t: &mut Attached) -> StopReason {
    let now = std::fs::read_link(target::exe_path(t.pid))
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default();
    t.notes.push(format!(
        "pid {} executed a new program{now}: the trace of {} ends there (to trace the new program, run mapleak trace --pid {} again)",
        t.pid, t.image.shown, t.pid
    ));
    StopReason::TargetExec
}

/// Where the report could not be written: `output_closed` for a reader that went away (the
/// usual end of `mapleak trace … | head`), else an error.
fn output_failed(notes: &mut Vec<String>, e: SinkError) -> StopReason {
    match e {
        SinkError::Closed => StopReason::OutputClosed,
        SinkError::Failed(why) => {
            notes.push(why);
            StopReason::Error
        }
    }
}

/// The report's sink and the profiles asked for, each file created now.
fn open_sinks(opts: &TraceOptions) -> Result<Vec<Box<dyn Sink>>, TraceError> {
    let output = opts.output.as_deref().map(ReportFile::create).transpose()?;
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(ReportSink::new(
        opts.format,
        output,
        opts.report_to_stderr,
    )?)];
    if let Some(path) = &opts.pprof {
        sinks.push(Box::new(PprofSink(ReportFile::create(path)?)));
    }
    if let Some(path) = &opts.flamegraph {
        sinks.push(Box::new(FlamegraphSink(ReportFile::create(path)?)));
    }
    Ok(sinks)
}

/// Detaches every probe, then builds and writes the final report.
fn finish(opts: &TraceOptions, t: Attached, stopped: Stopped) -> Outcome {
    let Attached {
        pid,
        image,
        inspection,
        mut loaded,
        agg,
        duty,
        sinks,
        mut notes,
        hit_cost,
        bias,
        started,
        attach_failures,
        ..
    } = t;
    for (group, (count, first)) in attach_failures {
        notes.push(format!(
            "the {} probes could not be attached again {count} time(s), first {first}; they stayed detached until the next try",
            group.name()
        ));
    }
    let counters = loaded.counters();
    loaded.detach_all();
    drop(loaded);
    let unstacked = agg.stacks().dropped;
    if unstacked > 0 {
        notes.push(format!(
            "{unstacked} record(s) have no call site: mapleak keeps {} distinct stacks",
            stacks::MAX_STACKS
        ));
    }
    let duration_ns = (stopped.at - started).as_nanos() as u64;
    let since_start = stopped.at.elapsed().as_nanos() as u64 + duration_ns;
    let report = build::build(build::Gathered {
        meta: TraceMeta {
            pid,
            go_version: inspection.go_version.clone(),
            map_impl: inspection.map_impl,
            // The time the probes were attached, not the time it took to detach them.
            duration_ns,
            stop: stopped.reason,
            notes,
        },
        agg: &agg,
        counters,
        sampling: SamplingSummary {
            governor: duty.governed(),
            max_overhead: opts.max_overhead,
            hit_cost_ns: hit_cost.as_nanos() as u64,
            groups: duty.sampler.summary(),
        },
        top: opts.top,
        inspection: &inspection,
        image: image.bytes(),
        image_shown: &image.shown,
        bias,
        allocated_bytes: duty.allocated_bytes(),
        started_unix_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            .saturating_sub(since_start),
        profile: sinks.iter().any(|s| s.wants_profile()),
    });
    let mut failure = match report.summary.stop_reason {
        StopReason::Error => report.summary.notes.last().cloned(),
        StopReason::OutputClosed => {
            Some("the report's reader closed its end: the trace stopped there".into())
        }
        _ => None,
    };
    let mut sinks = sinks.into_iter();
    // The report's reader, if gone, hears nothing more; the profiles are written all the same.
    if let Some(first) = sinks.next()
        && report.summary.stop_reason != StopReason::OutputClosed
        && let Err(e) = first.finish(&report)
    {
        failure.get_or_insert(match e {
            SinkError::Closed => "the report's reader closed its end".to_owned(),
            SinkError::Failed(why) => why,
        });
    }
    for sink in sinks {
        if let Err(SinkError::Failed(why)) = sink.finish(&report) {
            failure.get_or_insert(why);
        }
    }
    Outcome {
        summary: report.summary,
        failure,
    }
}

/// What is read from the target and the kernel's maps rather than streamed: memory, live map
/// sizes, assignment counts.
fn sample(live: &LiveReader, loaded: &loader::Loaded, agg: &mut Aggregator) {
    live.sample(agg);
    agg.set_assigns(&loaded.assigns());
}

/// Ends a duty-cycle switch: a switched GC group leaves no half-seen pause behind; a group that
/// could not be attached because the target is gone (or runs another program now) ends the
/// trace, and otherwise stays detached with a note until its next window.
fn switched(t: &mut Attached, result: Switched) -> Option<StopReason> {
    let gc = |g: &ProbeGroup| *g == ProbeGroup::Gc;
    if result.groups.iter().any(gc) || result.failed.iter().any(|(g, _)| gc(g)) {
        t.agg.gc_gap();
    }
    let (group, error) = result.failed.into_iter().next()?;
    if t.image.id().replaced_in(t.pid) {
        return Some(exec_stop(t));
    }
    if !t.image.id().runs_in(t.pid) || !target::is_alive(t.pid) {
        return Some(StopReason::TargetExited);
    }
    let failures = t.attach_failures.entry(group).or_insert((0, String::new()));
    if failures.0 == 0 {
        failures.1 = format!(
            "at {:.1} s: {}",
            t.started.elapsed().as_secs_f64(),
            super::error_chain(&error)
        );
    }
    failures.0 += 1;
    None
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

fn announce(
    inspection: &Inspection,
    loaded: &loader::Loaded,
    pid: u32,
    hit_cost: Duration,
    opts: &TraceOptions,
) {
    let probes = loaded.attached_names();
    let until = if opts.launched {
        "from its first instruction until it exits"
    } else {
        "Ctrl-C to stop"
    };
    super::say(&format!(
        "tracing pid {pid} ({}, {} maps): {} probe(s) attached ({}); {until}",
        inspection.go_version,
        inspection.map_impl.as_str(),
        probes.len(),
        probes.join(", ")
    ));
    let hit = hit_cost.as_nanos() as f64 / 1e3;
    if opts.exact {
        super::say(&format!(
            "exact mode: every probe stays attached whatever it costs (one hit ≈ {hit:.1} µs here)"
        ));
    } else {
        super::say(&format!(
            "one uprobe hit costs {hit:.1} µs here; probes are duty-cycled to keep the target's overhead under {}",
            crate::report::units::percent(opts.max_overhead)
        ));
    }
}
