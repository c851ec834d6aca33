//! One run of tests/fixtures/bench: start it, attach a tracer while it waits, let it run, read
//! its ns/op and the tracer's probe hit counts.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    thread,
};

use anyhow::{Context as _, Result, bail};

use super::bpftrace::{self, Bpftrace};

/// What mapleak prints to stderr once its probes are attached.
const ATTACHED: &str = "mapleak: tracing pid";

/// mapleak's map-growth probes (classic and Swiss); every other probe (GC, syscalls) is counted
/// apart. The bpftrace script attaches to these only.
pub const GROWTH_SYMBOLS: &[&str] = &[
    "runtime.hashGrow",
    "internal/runtime/maps.(*Map).growToSmall",
    "internal/runtime/maps.(*Map).growToTable",
    "internal/runtime/maps.(*table).rehash",
];

/// The workloads of tests/fixtures/bench (its first argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Inserts into a reused pre-sized map: no growth.
    Presized,
    /// Many short-lived 200-entry unsized maps.
    Churn,
    /// A few unsized maps grown to millions of entries.
    Large,
    /// Churn's maps kept inside their function: the compiler puts them on the stack.
    Stack,
    /// Churn on 8 goroutines.
    Parallel,
    /// Large maps filled by 2 goroutines over a large pointer-rich live heap: GC mark assists.
    Assist,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Presized,
        Workload::Churn,
        Workload::Large,
        Workload::Stack,
        Workload::Parallel,
        Workload::Assist,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Presized => "presized",
            Workload::Churn => "churn",
            Workload::Large => "large",
            Workload::Stack => "stack",
            Workload::Parallel => "parallel",
            Workload::Assist => "assist",
        }
    }

    /// For the report's first column.
    pub fn about(self) -> &'static str {
        match self {
            Workload::Presized => {
                "presized: a reused `make(map[int]int, 65536)` refilled 1 024 times (no growth)"
            }
            Workload::Churn => {
                "churn: 150 000 `map[int]int{}` filled with 200 ints each, then dropped"
            }
            Workload::Large => "large: 4 `map[int]int{}` grown to 2 million entries each",
            Workload::Stack => {
                "stack: 200 000 `map[int]int{}` filled with 200 ints each inside their function (on the stack)"
            }
            Workload::Parallel => "parallel: churn's 150 000 maps made on 8 goroutines",
            Workload::Assist => {
                "assist: 2 goroutines fill 50 `map[int]int{}` of 200 000 ints each over a 64 MiB pointer-rich live heap (GC mark assists)"
            }
        }
    }
}

/// Who watches the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracer {
    Untraced,
    /// `mapleak trace --pid P`: the overhead governor on (default budget).
    Mapleak,
    /// `mapleak trace --pid P --exact`.
    MapleakExact,
    /// bpftrace with the same growth probes.
    Bpftrace,
}

impl Tracer {
    pub const ALL: [Tracer; 4] = [
        Tracer::Untraced,
        Tracer::Mapleak,
        Tracer::MapleakExact,
        Tracer::Bpftrace,
    ];

    /// The order of round `round`: [`Tracer::ALL`] rotated, so that each tracer takes each
    /// position (first after a build, after the heaviest run, …) equally often.
    pub fn rotated(round: usize) -> [Tracer; 4] {
        let mut order = Self::ALL;
        order.rotate_left(round % Self::ALL.len());
        order
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&t| t == self).expect("in ALL")
    }

    /// For progress lines.
    pub fn short(self) -> &'static str {
        match self {
            Tracer::Untraced => "untraced",
            Tracer::Mapleak => "default",
            Tracer::MapleakExact => "--exact",
            Tracer::Bpftrace => "bpftrace",
        }
    }
}

/// What the runs need.
pub struct Tools {
    pub workload: PathBuf,
    pub mapleak: PathBuf,
    pub bpftrace_script: PathBuf,
    /// How many uprobes the script attaches (checked against bpftrace's own count).
    pub bpftrace_probes: usize,
    /// Where mapleak's reports go.
    pub dir: PathBuf,
}

/// One run of the workload.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Run {
    /// Wall-clock and CPU (user + sys, all the workload's threads) ns per insert.
    pub wall: f64,
    pub cpu: f64,
    pub inserts: u64,
    /// Hits of the map-growth probes (`None` untraced).
    pub growth_hits: Option<u64>,
    /// mapleak only: `(symbol, hits)` of its other probes (GC, syscalls), summed per symbol.
    pub other_hits: Vec<(String, u64)>,
    /// mapleak only: the share of the run during which the growth probes were attached.
    pub growth_attached: Option<f64>,
}

/// A tracer attached to the workload.
enum Attached {
    /// mapleak stops by itself when the target exits; its report goes to the path.
    Mapleak(Child, PathBuf),
    Bpftrace(Bpftrace),
}

impl Attached {
    fn kill(self) {
        match self {
            Attached::Mapleak(mut child, _) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Attached::Bpftrace(b) => b.kill(),
        }
    }
}

/// Starts the workload, attaches `tracer`, starts the loop, and returns the workload's ns/op with
/// the tracer's hit counts.
pub fn run(tools: &Tools, workload: Workload, tracer: Tracer, round: u32) -> Result<Run> {
    run_with(tools, workload, tracer, round, None)
}

/// [`run`], with mapleak's overhead budget set to `budget` percent when it is given.
pub fn run_with(
    tools: &Tools,
    workload: Workload,
    tracer: Tracer,
    round: u32,
    budget: Option<f64>,
) -> Result<Run> {
    let mut child = Command::new(&tools.workload)
        .arg(workload.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", tools.workload.display()))?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut attached = None;
    let measured = (|| {
        let line = read_line(&mut stdout)?;
        let pid = line
            .strip_prefix("ready ")
            .with_context(|| format!("the workload printed {line:?}, not `ready PID`"))?;
        attached = match tracer {
            Tracer::Untraced => None,
            Tracer::Mapleak | Tracer::MapleakExact => {
                let report = tools.dir.join(format!(
                    "trace-{}-{}{}-{round}.jsonl",
                    workload.name(),
                    tracer.short().trim_start_matches('-'),
                    budget.map(|b| format!("-{b}")).unwrap_or_default()
                ));
                let mut args = Vec::new();
                if tracer == Tracer::MapleakExact {
                    args.push("--exact".to_owned());
                }
                if let Some(b) = budget {
                    args.extend(["--max-overhead".to_owned(), b.to_string()]);
                }
                let child = attach_mapleak(&tools.mapleak, pid, &report, &args)?;
                Some(Attached::Mapleak(child, report))
            }
            Tracer::Bpftrace => Some(Attached::Bpftrace(bpftrace::attach(
                &tools.bpftrace_script,
                tools.bpftrace_probes,
            )?)),
        };
        start_and_measure(&mut child, &mut stdout)
    })();
    if measured.is_err() {
        // The workload may still wait for its start line, and the tracer for the workload.
        let _ = child.kill();
        let _ = child.wait();
        if let Some(attached) = attached.take() {
            attached.kill();
        }
    }
    let status = child.wait()?;
    let (wall, cpu, inserts) = measured?;
    let mut run = Run {
        wall,
        cpu,
        inserts,
        ..Run::default()
    };
    match attached {
        None => {}
        Some(Attached::Mapleak(mut mapleak, report)) => {
            // mapleak stops by itself once the target has exited.
            let traced = mapleak.wait()?;
            if !traced.success() {
                bail!("mapleak failed ({traced})");
            }
            let summary = read_summary(&report)?;
            let hits = summary_hits(&summary)?;
            let (growth, other): (Vec<_>, Vec<_>) = hits
                .into_iter()
                .partition(|(s, _)| GROWTH_SYMBOLS.contains(&s.as_str()));
            run.growth_hits = Some(growth.iter().map(|(_, h)| h).sum());
            run.other_hits = other;
            run.growth_attached = growth_attached(&summary);
        }
        Some(Attached::Bpftrace(b)) => run.growth_hits = Some(b.stop()?),
    }
    if !status.success() {
        bail!(
            "{} {} failed ({status})",
            tools.workload.display(),
            workload.name()
        );
    }
    Ok(run)
}

/// Sends the start line and reads the workload's `ns/op X cpu-ns/op Y inserts N`.
fn start_and_measure(
    child: &mut Child,
    stdout: &mut BufReader<ChildStdout>,
) -> Result<(f64, f64, u64)> {
    child.stdin.take().context("no stdin")?.write_all(b"go\n")?;
    let line = read_line(stdout)?;
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["ns/op", wall, "cpu-ns/op", cpu, "inserts", n] => {
            Ok((wall.parse()?, cpu.parse()?, n.parse()?))
        }
        _ => bail!("the workload printed {line:?}, not `ns/op X cpu-ns/op Y inserts N`"),
    }
}

/// Starts `mapleak trace` on `pid` and returns once its probes are attached (a blocking read of
/// its stderr: no sleeps, no races).
fn attach_mapleak(mapleak: &Path, pid: &str, output: &Path, args: &[String]) -> Result<Child> {
    let mut cmd = Command::new(mapleak);
    cmd.args(["trace", "--pid", pid, "--format", "json", "--output"])
        .arg(output)
        .args(args);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", mapleak.display()))?;
    let mut stderr = BufReader::new(child.stderr.take().context("no stderr")?);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line)? == 0 {
            let status = child.wait()?;
            bail!("mapleak exited ({status}) before attaching:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(ATTACHED) {
            break;
        }
    }
    // Keep draining stderr so that mapleak never blocks on a full pipe.
    thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Ok(child)
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> Result<String> {
    let mut line = String::new();
    if stdout.read_line(&mut line)? == 0 {
        bail!("the workload closed its stdout early");
    }
    Ok(line.trim_end().to_owned())
}

/// The summary: the JSON Lines report's last line.
fn read_summary(output: &Path) -> Result<serde_json::Value> {
    let text =
        fs::read_to_string(output).with_context(|| format!("reading {}", output.display()))?;
    let last = text.lines().last().context("mapleak wrote no report")?;
    serde_json::from_str(last).with_context(|| format!("the last line of {}", output.display()))
}

/// `(symbol, hits)` in the summary, summed per symbol: a function can carry several probes (e.g.
/// one per return instruction).
fn summary_hits(summary: &serde_json::Value) -> Result<Vec<(String, u64)>> {
    let probes = summary["probes"]
        .as_array()
        .context("the summary has no `probes`")?;
    let mut hits: Vec<(String, u64)> = Vec::new();
    for probe in probes {
        let (Some(symbol), Some(n)) = (probe["symbol"].as_str(), probe["hits"].as_u64()) else {
            bail!("a probe in the summary lacks `symbol` or `hits`: {probe}");
        };
        match hits.iter_mut().find(|(s, _)| s == symbol) {
            Some((_, total)) => *total += n,
            None => hits.push((symbol.to_owned(), n)),
        }
    }
    Ok(hits)
}

/// `sampling.groups[growth].attached_fraction`.
fn growth_attached(summary: &serde_json::Value) -> Option<f64> {
    summary["sampling"]["groups"]
        .as_array()?
        .iter()
        .find(|g| g["group"] == "growth")?["attached_fraction"]
        .as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_hits_per_symbol_from_the_summary() {
        let summary: serde_json::Value = serde_json::from_str(
            r#"{"type":"summary","probes":[{"symbol":"a","hits":5},{"symbol":"b","hits":1},{"symbol":"b","hits":2}],
                "sampling":{"groups":[{"group":"gc","attached_fraction":1.0},{"group":"growth","attached_fraction":0.25}]}}"#,
        )
        .unwrap();
        assert_eq!(
            summary_hits(&summary).unwrap(),
            vec![("a".to_owned(), 5), ("b".to_owned(), 3)]
        );
        assert_eq!(growth_attached(&summary), Some(0.25));
    }

    #[test]
    fn every_tracer_takes_every_position() {
        for position in 0..Tracer::ALL.len() {
            let mut seen: Vec<Tracer> = (0..4).map(|r| Tracer::rotated(r)[position]).collect();
            seen.sort_by_key(|t| t.index());
            assert_eq!(seen, Tracer::ALL);
        }
    }
}
