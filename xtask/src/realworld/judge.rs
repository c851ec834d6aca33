//! The judgement of one traced program: pure functions of mapleak's JSON summary and what
//! xtask observed of the process itself, so that the rules are unit-tested on small summaries.
//!
//! The goals are issue 12's: mapleak attached and exited 0, lost no event, printed no finding
//! with an impossible number, named for every finding a line in the program's own code, and
//! printed at most [`MAX_FINDINGS`] findings. The finding rules are being rewritten, so the
//! checks read the evidence by field name and fall back to generic bounds for kinds and fields
//! they do not know, rather than failing on a schema change.

use serde_json::Value;

/// A program's report is read by a person: more findings than this is noise.
pub const MAX_FINDINGS: usize = 12;
/// No figure of a bounded trace on a machine of this size can reach a tebibyte.
const CEILING_BYTES: f64 = (1u64 << 40) as f64;

/// What xtask knows about the run besides the summary.
#[derive(Debug)]
pub struct Context {
    /// The package path of the program's own code (its main module), from its build info.
    pub own_prefix: Option<String>,
    /// The most memory the process had committed (its private writable mappings), sampled
    /// while it was traced: nothing on its heap can exceed it.
    pub committed: Option<u64>,
    /// The most it had resident (`VmHWM`): no reading of its RSS can exceed it.
    pub resident: Option<u64>,
    /// mapleak's exit code (`None`: killed by a signal) and the tail of its stderr.
    pub exit: Option<i32>,
    pub stderr: String,
    /// What the workload did (`Ok`: requests served, files built…) or why it failed.
    pub workload: Result<String, String>,
}

/// Where a finding's line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The program's main module (or package `main`): the line its authors can edit.
    Main,
    /// A third-party module the program depends on.
    Dependency,
    /// The Go standard library, runtime or compiler-generated code.
    Std,
    /// A process-wide finding (no call site).
    Process,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::Main => "own",
            Origin::Dependency => "dep",
            Origin::Std => "STD",
            Origin::Process => "process",
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug)]
pub struct FindingLine {
    pub kind: String,
    /// `function file:line`, empty for a process-wide finding.
    pub site: String,
    pub origin: Origin,
    /// The evidence on one line.
    pub evidence: String,
    /// Impossible numbers and site problems, each a sentence.
    pub problems: Vec<String>,
}

#[derive(Debug)]
pub struct Judgement {
    pub checks: Vec<Check>,
    pub findings: Vec<FindingLine>,
}

impl Judgement {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// The judgement of a program that was never traced (not installed, or it did not start).
pub fn not_traced(why: String) -> Judgement {
    Judgement {
        checks: vec![
            check("workload", false, why),
            check("attached", false, "not traced".to_owned()),
        ],
        findings: Vec::new(),
    }
}

/// Judges one run: `summary` is the last line of mapleak's JSON report, if it wrote one.
pub fn judge(summary: Option<&Value>, cx: &Context) -> Judgement {
    let mut checks = Vec::new();
    checks.push(match &cx.workload {
        Ok(what) => check("workload", true, what.clone()),
        Err(why) => check("workload", false, why.clone()),
    });
    let Some(s) = summary else {
        let why = match cx.exit {
            Some(code) => format!("mapleak exited {code} without a summary"),
            None => "mapleak was killed without a summary".to_owned(),
        };
        let tail = cx.stderr.trim();
        let detail = if tail.is_empty() {
            why
        } else {
            format!("{why}: {tail}")
        };
        checks.push(check("attached", false, detail));
        return Judgement {
            checks,
            findings: Vec::new(),
        };
    };

    let stop = s["stop_reason"].as_str().unwrap_or("?");
    let stopped_well = matches!(stop, "duration" | "target_exited");
    checks.push(check(
        "attached",
        cx.exit == Some(0) && stopped_well,
        format!(
            "exit {}, stop_reason {stop}, {:.1} s traced",
            cx.exit.map_or("by signal".to_owned(), |c| c.to_string()),
            s["duration_ns"].as_f64().unwrap_or(0.0) / 1e9
        ),
    ));

    let lost = s["events"]["lost"].as_u64();
    checks.push(check(
        "lost 0",
        lost == Some(0),
        format!(
            "{} received, {} lost, {} read errors",
            s["events"]["received"].as_u64().unwrap_or(0),
            lost.map_or("?".to_owned(), |n| n.to_string()),
            s["events"]["read_errors"].as_u64().unwrap_or(0)
        ),
    ));

    let bounds = Bounds::of(s, cx);
    let own = cx.own_prefix.as_deref();
    let findings: Vec<FindingLine> = s["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| finding_line(f, s, &bounds, own))
        .collect();

    let impossible: Vec<String> = findings
        .iter()
        .flat_map(|f| {
            f.problems
                .iter()
                .filter(|p| !p.starts_with(SITE_PROBLEM))
                .map(move |p| format!("{} at {}: {p}", f.kind, site_or_process(f)))
        })
        .collect();
    checks.push(check(
        "plausible numbers",
        impossible.is_empty(),
        if impossible.is_empty() {
            format!("every figure within bounds ({})", bounds.describe())
        } else {
            format!("{} ({})", impossible.join("; "), bounds.describe())
        },
    ));

    let misplaced: Vec<String> = findings
        .iter()
        .flat_map(|f| {
            f.problems
                .iter()
                .filter(|p| p.starts_with(SITE_PROBLEM))
                .map(move |p| format!("{} at {}: {p}", f.kind, site_or_process(f)))
        })
        .collect();
    let counted = |o: Origin| findings.iter().filter(|f| f.origin == o).count();
    checks.push(check(
        "own code",
        misplaced.is_empty(),
        if misplaced.is_empty() {
            format!(
                "{} in the main module, {} in dependencies, {} process-wide",
                counted(Origin::Main),
                counted(Origin::Dependency),
                counted(Origin::Process)
            )
        } else {
            misplaced.join("; ")
        },
    ));

    checks.push(check(
        "at most 12 findings",
        findings.len() <= MAX_FINDINGS,
        format!("{} finding(s)", findings.len()),
    ));
    Judgement { checks, findings }
}

fn check(name: &'static str, passed: bool, detail: String) -> Check {
    Check {
        name,
        passed,
        detail,
    }
}

fn site_or_process(f: &FindingLine) -> &str {
    if f.site.is_empty() {
        "the whole process"
    } else {
        &f.site
    }
}

/// Problems about where a finding points start with this, to be told apart from numbers.
const SITE_PROBLEM: &str = "the line ";

/// The limits physics puts on a finding's figures.
struct Bounds {
    /// Bytes (and slots, entries: each takes at least a byte) the process can hold at once.
    held: f64,
    held_from: &'static str,
    /// Resident bytes the process reached.
    resident: f64,
    /// Map-growth bytes the trace can stand for: what it saw, scaled up by the share of the
    /// time the growth probes were attached (a sampled estimate can be no larger).
    allocated: f64,
    seconds: f64,
    swiss: bool,
}

impl Bounds {
    fn of(s: &Value, cx: &Context) -> Bounds {
        let (held, held_from) = match cx.committed {
            Some(committed) if committed > 0 => (committed as f64, "committed by the process"),
            _ => (CEILING_BYTES, "1 TiB: the process's memory was not read"),
        };
        let grown = s["maps"]["grow_bytes"].as_f64().unwrap_or(0.0);
        let growth = s["sampling"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["group"] == "growth");
        let share = growth
            .clone()
            .filter_map(|g| g["attached_fraction"].as_f64())
            .fold(1.0f64, f64::min)
            // A share this small makes any estimate meaningless anyway.
            .max(1e-3);
        // mapleak scales by the heap the target allocated in and out of the windows, which can
        // stand for more than the attached share: its own ratio bounds the estimates too.
        let ratio = growth
            .filter_map(|g| {
                let observed = g["observed_events"].as_f64().filter(|o| *o > 0.0)?;
                Some(g["estimated_events"].as_f64()? / observed)
            })
            .fold(1.0f64, f64::max);
        Bounds {
            held,
            held_from,
            resident: cx
                .resident
                .filter(|r| *r > 0)
                .map_or(CEILING_BYTES, |r| r as f64),
            allocated: grown * (1.0 / share).max(ratio),
            seconds: s["duration_ns"].as_f64().unwrap_or(0.0) / 1e9,
            swiss: s["map_impl"] == "swiss",
        }
    }

    fn describe(&self) -> String {
        format!(
            "held ≤ {} ({}), resident ≤ {}, map growth ≤ {}",
            human_bytes(self.held),
            self.held_from,
            human_bytes(self.resident),
            human_bytes(self.allocated)
        )
    }
}

/// What bounds a `…bytes…` field of a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Measure {
    /// Memory held at one moment on the heap: at most what the process committed.
    Held,
    /// Resident memory (file-backed pages included): at most the process's peak RSS.
    Resident,
    /// Memory returned over the trace: only the ceiling bounds it.
    Released,
    /// Allocation over the trace: at most the map growth the trace can stand for.
    Allocated,
    /// Map growth as the allocator hands it out (size-class slots, pages, a Swiss growth's
    /// tables): the growth rounded up, by at most a quarter (an array just over 32 KiB takes
    /// whole pages).
    Slots,
    /// All the process allocated, maps or not: only the ceiling bounds it.
    Process,
}

fn measure(kind: &str, field: &str) -> Measure {
    if field.starts_with("released") {
        return Measure::Released;
    }
    if field.starts_with("rss") || field.contains("excess") || field.contains("lazy") {
        return Measure::Resident;
    }
    match kind {
        "retained_capacity" if matches!(field, "bytes" | "total_bytes" | "bytes_reclaimable") => {
            Measure::Held
        }
        "unreleased_memory" => Measure::Held,
        "gc_pressure" if field == "map_bytes" => Measure::Slots,
        "gc_pressure" if matches!(field, "allocated_bytes" | "runway_bytes") => Measure::Process,
        _ if field.starts_with("held") || field.contains("live") => Measure::Held,
        _ => Measure::Allocated,
    }
}

fn finding_line(f: &Value, s: &Value, b: &Bounds, own: Option<&str>) -> FindingLine {
    let kind = f["kind"].as_str().unwrap_or("?").to_owned();
    let function = f["function"].as_str().unwrap_or("");
    let file = f["file"].as_str().unwrap_or("");
    let line = f["line"].as_u64().unwrap_or(0);
    let site = if function.is_empty() && file.is_empty() {
        String::new()
    } else {
        format!("{function} {file}:{line}")
    };
    let mut problems = numbers(&kind, &f["evidence"], b);
    problems.extend(text_sizes(f["suggestion"].as_str().unwrap_or("")));

    let origin = if site.is_empty() {
        Origin::Process
    } else {
        origin(function, own)
    };
    match origin {
        Origin::Std => problems.push(format!(
            "{SITE_PROBLEM}is in the standard library or runtime, which its user cannot edit"
        )),
        Origin::Dependency => {
            if let Some(frame) = main_frame_below(s, function, file, line, own) {
                problems.push(format!(
                    "{SITE_PROBLEM}is in a dependency, yet the program's own frame {frame} is in its stack"
                ));
            }
        }
        Origin::Main | Origin::Process => {}
    }
    FindingLine {
        kind,
        site,
        origin,
        evidence: one_line(&f["evidence"]),
        problems,
    }
}

/// The impossible figures of one finding's evidence, each as a sentence.
fn numbers(kind: &str, ev: &Value, b: &Bounds) -> Vec<String> {
    let mut out = Vec::new();
    let Some(fields) = ev.as_object() else {
        return out;
    };
    let num = |name: &str| fields.get(name).and_then(Value::as_f64);
    for (name, value) in fields {
        let Some(v) = value.as_f64() else { continue };
        if !v.is_finite() || v < 0.0 {
            out.push(format!("{name} is {v}"));
            continue;
        }
        if name.contains("bytes") {
            if name.ends_with("per_sec") {
                // Churn counts each map's 48-byte header besides its growth.
                let headers = num("maps_per_sec").unwrap_or(0.0) * b.seconds * 48.0;
                if v * b.seconds > b.allocated * 1.01 + headers + 1.0 {
                    out.push(format!(
                        "{name} {}/s over {:.1} s exceeds all map growth the trace can stand for ({})",
                        human_bytes(v),
                        b.seconds,
                        human_bytes(b.allocated)
                    ));
                }
            } else {
                let (bound, what) = match measure(kind, name) {
                    Measure::Held => (b.held, "what the process can hold"),
                    Measure::Resident => (b.resident, "the most the process had resident"),
                    Measure::Released => (CEILING_BYTES, "1 TiB"),
                    Measure::Allocated => (
                        b.allocated * 1.01 + 1.0,
                        "all map growth the trace can stand for",
                    ),
                    Measure::Slots => (
                        b.allocated * 1.25 + 1.0,
                        "all map growth the trace can stand for, in whole slots",
                    ),
                    Measure::Process => (CEILING_BYTES, "1 TiB"),
                };
                if v > bound {
                    out.push(format!(
                        "{name} {} exceeds {what} ({})",
                        human_bytes(v),
                        human_bytes(bound)
                    ));
                }
            }
        } else if (name.contains("entries") || name.contains("capacity") || name == "hint")
            && v > b.held
        {
            out.push(format!(
                "{name} {v} exceeds what the process can hold ({}, at least a byte each)",
                human_bytes(b.held)
            ));
        }
    }
    // A classic map's slots are 8 × 2^B; a Swiss map's are 8-slot groups, a power of two per
    // table and a sum over its tables.
    if let Some(cap) = num("capacity").map(|c| c as u64) {
        if cap > 0 && !b.swiss && (!cap.is_power_of_two() || cap < 8) {
            out.push(format!(
                "capacity {cap} is not 8 × a power of two (a classic map's slots)"
            ));
        }
        if cap > 0 && b.swiss && cap % 8 != 0 {
            out.push(format!(
                "capacity {cap} is not a multiple of 8 (a Swiss map's group)"
            ));
        }
        if let Some(entries) = num("entries").filter(|e| *e > cap as f64) {
            out.push(format!("entries {entries} exceed capacity {cap}"));
        }
    }
    let mut at_most = |small: &str, large: &str| {
        if let (Some(x), Some(y)) = (num(small), num(large)) {
            if x > y * 1.0001 {
                out.push(format!("{small} {x} exceeds {large} {y}"));
            }
        }
    };
    at_most("maps_covered", "maps");
    at_most("maps_freed", "maps");
    at_most("grow_events_saved", "grow_events");
    at_most("mark_grow_events", "grow_events");
    at_most("entries_p50", "entries_p90");
    at_most("entries_p90", "entries_max");
    at_most("bytes_reclaimable", "total_bytes");
    at_most("excess_bytes", "rss_bytes");
    at_most("lazy_free_bytes", "rss_bytes");
    match kind {
        "unsized_map" => {
            at_most("bytes_saved", "bytes");
            at_most("hint", "entries_max");
        }
        "retained_capacity" => at_most("bytes", "total_bytes"),
        "growth_in_gc" => at_most("mark_bytes", "bytes"),
        _ => {}
    }
    if let Some(share) = num("mark_share").filter(|s| *s > 1.0) {
        out.push(format!("mark_share {share} is above 1"));
    }
    if num("maps") == Some(0.0) {
        out.push("it rests on 0 maps".to_owned());
    }
    out
}

/// Sizes of a tebibyte or more in a suggestion's text ("18.1 PiB"): a finding's sentence can
/// carry a figure its evidence does not.
fn text_sizes(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| {
            let unit = w[1].trim_end_matches(|c: char| !c.is_ascii_alphabetic());
            matches!(unit, "TiB" | "PiB" | "EiB") && w[0].parse::<f64>().is_ok()
        })
        .map(|w| {
            format!(
                "its text says {} {}",
                w[0],
                w[1].trim_end_matches(|c: char| !c.is_ascii_alphabetic())
            )
        })
        .collect()
}

/// The Go package of a symbol: `github.com/a/b.(*T).M` → `github.com/a/b`. Type arguments
/// (`F[go.shape.int]`) can hold slashes and dots of their own, so they are cut first.
pub fn package(function: &str) -> &str {
    let f = function.split('[').next().unwrap_or(function);
    let last = f.rfind('/').map_or(0, |i| i + 1);
    match f[last..].find('.') {
        Some(dot) => &f[..last + dot],
        None => f,
    }
}

/// Where a function's code comes from, for a program whose own code is `own`.
pub fn origin(function: &str, own: Option<&str>) -> Origin {
    if function.starts_with("type:") || function.starts_with("type..") || function.is_empty() {
        // Compiler-generated equality and hash functions.
        return Origin::Std;
    }
    let pkg = package(function);
    if pkg.contains("/vendor/") || pkg.starts_with("vendor/") {
        // Vendored copies: the standard library's are its own, a module's are third-party.
        return if pkg.starts_with("vendor/") {
            Origin::Std
        } else {
            Origin::Dependency
        };
    }
    if pkg == "main" {
        return Origin::Main;
    }
    if let Some(own) = own {
        if pkg == own || pkg.starts_with(&format!("{own}/")) {
            return Origin::Main;
        }
    }
    let first = pkg.split('/').next().unwrap_or(pkg);
    if first.contains('.') {
        Origin::Dependency
    } else {
        Origin::Std
    }
}

/// For a finding at a dependency's line: the first frame of the program's own code in the
/// same site's stack, which the finding should have named instead.
fn main_frame_below(
    s: &Value,
    function: &str,
    file: &str,
    line: u64,
    own: Option<&str>,
) -> Option<String> {
    let site = s["sites"].as_array()?.iter().find(|site| {
        site["function"] == function && site["file"] == file && site["line"].as_u64() == Some(line)
    })?;
    site["stack"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|frame| {
            let f = frame.rsplit_once(' ').map_or(*frame, |(f, _)| f);
            origin(f, own) == Origin::Main
        })
        .map(str::to_owned)
}

/// `maps=975 grow_events=2435 bytes=4.2MiB …`: every field, sizes in binary units.
pub fn one_line(ev: &Value) -> String {
    let Some(fields) = ev.as_object() else {
        return ev.to_string();
    };
    fields
        .iter()
        .map(|(name, v)| {
            let shown = match v.as_f64() {
                Some(n) if name.contains("bytes") => {
                    let per = if name.ends_with("per_sec") { "/s" } else { "" };
                    format!("{}{per}", human_bytes(n).replace(' ', ""))
                }
                Some(n) if v.is_f64() => format!("{n:.3}"),
                _ => match v.as_str() {
                    Some(text) => text.to_owned(),
                    None => v.to_string(),
                },
            };
            format!("{name}={shown}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1.5 KiB`: binary units, as mapleak prints them.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests;
