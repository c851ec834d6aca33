//! Medians, ratios and the markdown tables of `cargo xtask bench`.

use anyhow::{Result, bail};

use super::workload::{Run, Tracer, Workload};

/// The goal for mapleak's default mode: traced / untraced wall time at most this, everywhere.
const DEFAULT_GOAL: f64 = 1.03;

/// Every run of one workload, per tracer (indexed by [`Tracer::index`]), in round order.
struct Row {
    workload: Workload,
    runs: [Vec<Run>; 4],
}

impl Row {
    fn of(&self, tracer: Tracer) -> &[Run] {
        &self.runs[tracer.index()]
    }

    /// Per round, `tracer`'s figure divided by the same round's untraced one.
    fn ratios(&self, tracer: Tracer, figure: fn(&Run) -> f64) -> Vec<f64> {
        self.of(tracer)
            .iter()
            .zip(self.of(Tracer::Untraced))
            .map(|(t, u)| figure(t) / figure(u))
            .collect()
    }

    /// The median per-round wall-time ratio.
    fn wall_ratio(&self, tracer: Tracer) -> f64 {
        median(&mut self.ratios(tracer, |r| r.wall))
    }

    /// Half the untraced runs' relative spread, (max − min) / 2 / median: a difference between
    /// two tracers' ratios smaller than this is the machine's noise, not theirs.
    fn noise(&self) -> f64 {
        let mut walls: Vec<f64> = self.of(Tracer::Untraced).iter().map(|r| r.wall).collect();
        if walls.is_empty() {
            return 0.0;
        }
        let (min, max) = walls
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &w| (lo.min(w), hi.max(w)));
        (max - min) / 2.0 / median(&mut walls)
    }

    /// Per round, what one probe hit of `tracer` cost the target in CPU (ns): its CPU time over
    /// the same round's untraced run, spread over every probe of the tracer that fired.
    fn cost_per_hit(&self, tracer: Tracer) -> Vec<f64> {
        self.of(tracer)
            .iter()
            .zip(self.of(Tracer::Untraced))
            .filter_map(|(t, u)| {
                let hits = t.growth_hits? + t.other_hits.iter().map(|(_, h)| h).sum::<u64>();
                (hits > 0).then(|| (t.cpu - u.cpu) * t.inserts as f64 / hits as f64)
            })
            .collect()
    }

    /// The median of `tracer`'s growth-probe hits.
    fn growth_hits(&self, tracer: Tracer) -> u64 {
        let mut hits: Vec<u64> = self
            .of(tracer)
            .iter()
            .filter_map(|r| r.growth_hits)
            .collect();
        if hits.is_empty() {
            0
        } else {
            median_u64(&mut hits)
        }
    }
}

pub struct Report {
    runs: u32,
    go_version: &'static str,
    rows: Vec<Row>,
    /// bpftrace's version and what its script does.
    pub bpftrace: String,
    /// `(shape, events/s)`.
    pub aggregator: Vec<(String, f64)>,
    /// `(binary MB, median ms)` of `mapleak inspect` on a stripped Go program.
    pub inspect: (f64, f64),
    pub machine: String,
}

impl Report {
    pub fn new(runs: u32, go_version: &'static str, workloads: &[Workload]) -> Report {
        Report {
            runs,
            go_version,
            rows: workloads
                .iter()
                .map(|&workload| Row {
                    workload,
                    runs: Default::default(),
                })
                .collect(),
            bpftrace: String::new(),
            aggregator: Vec::new(),
            inspect: (0.0, 0.0),
            machine: String::new(),
        }
    }

    pub fn push(&mut self, workload: Workload, tracer: Tracer, run: Run) {
        if let Some(row) = self.rows.iter_mut().find(|r| r.workload == workload) {
            row.runs[tracer.index()].push(run);
        }
    }

    /// bpftrace's probes must fire as often as mapleak `--exact`'s: the proof that they sit on the
    /// same instructions. None at all where mapleak's fire means a misplaced probe: an error.
    pub fn check_hits(&self) -> Result<()> {
        for row in &self.rows {
            let (exact, bpftrace) = (
                row.growth_hits(Tracer::MapleakExact),
                row.growth_hits(Tracer::Bpftrace),
            );
            if exact > 0 && bpftrace == 0 {
                bail!(
                    "{}: bpftrace's growth probes never fired, mapleak --exact's fired {exact} times",
                    row.workload.name()
                );
            }
            if exact != bpftrace {
                println!(
                    "bench: warning: {}: growth-probe hits differ: mapleak --exact {exact}, bpftrace {bpftrace}",
                    row.workload.name()
                );
            }
        }
        Ok(())
    }

    /// The results as markdown, ready for the README.
    pub fn table(&self) -> String {
        let runs = self.runs;
        let traced = [Tracer::Mapleak, Tracer::MapleakExact, Tracer::Bpftrace];
        let mut wall = format!(
            "| tests/fixtures/bench (Go {}), median of {runs} rounds | inserts per run | untraced ns/op (range) | mapleak default | mapleak `--exact` | bpftrace |\n\
             |---|---|---|---|---|---|\n",
            self.go_version
        );
        let mut cpu = String::from(
            "| workload | mapleak default | mapleak `--exact` | bpftrace |\n|---|---|---|---|\n",
        );
        let mut per_hit = String::from(
            "| workload | probe hits per run, `--exact` (median) | target CPU per hit, `--exact` |\n|---|---|---|\n",
        );
        let mut hits = String::from(
            "| workload | mapleak default (growth probes attached) | mapleak `--exact` | bpftrace | mapleak's other probes (GC, assists, syscalls), `--exact` |\n\
             |---|---|---|---|---|\n",
        );
        for row in &self.rows {
            let mut untraced: Vec<f64> = row.of(Tracer::Untraced).iter().map(|r| r.wall).collect();
            let inserts = row.of(Tracer::Untraced).first().map_or(0, |r| r.inserts);
            wall.push_str(&format!(
                "| {} | {:.1} M | {} |",
                row.workload.about(),
                inserts as f64 / 1e6,
                with_range(&mut untraced, 2)
            ));
            cpu.push_str(&format!("| {} |", row.workload.name()));
            for tracer in traced {
                wall.push_str(&format!(
                    " {} |",
                    with_range(&mut row.ratios(tracer, |r| r.wall), 2)
                ));
                cpu.push_str(&format!(
                    " {} |",
                    with_range(&mut row.ratios(tracer, |r| r.cpu), 2)
                ));
            }
            wall.push('\n');
            cpu.push('\n');
            let mut attached: Vec<f64> = row
                .of(Tracer::Mapleak)
                .iter()
                .filter_map(|r| r.growth_attached)
                .collect();
            let attached = if attached.is_empty() {
                String::new()
            } else {
                format!(" ({:.0} %)", median(&mut attached) * 100.0)
            };
            let mut other: Vec<u64> = row
                .of(Tracer::MapleakExact)
                .iter()
                .map(|r| r.other_hits.iter().map(|(_, h)| h).sum())
                .collect();
            let mut all_hits: Vec<u64> = row
                .of(Tracer::MapleakExact)
                .iter()
                .map(|r| {
                    r.growth_hits.unwrap_or(0) + r.other_hits.iter().map(|(_, h)| h).sum::<u64>()
                })
                .collect();
            let mut costs = row.cost_per_hit(Tracer::MapleakExact);
            if !costs.is_empty() && !all_hits.is_empty() {
                for c in &mut costs {
                    *c /= 1000.0;
                }
                per_hit.push_str(&format!(
                    "| {} | {} | {} µs |\n",
                    row.workload.name(),
                    grouped(median_u64(&mut all_hits)),
                    with_range(&mut costs, 2)
                ));
            }
            hits.push_str(&format!(
                "| {} | {}{attached} | {} | {} | {} |\n",
                row.workload.name(),
                grouped(row.growth_hits(Tracer::Mapleak)),
                grouped(row.growth_hits(Tracer::MapleakExact)),
                grouped(row.growth_hits(Tracer::Bpftrace)),
                grouped(if other.is_empty() {
                    0
                } else {
                    median_u64(&mut other)
                }),
            ));
        }
        let aggregator: String = self
            .aggregator
            .iter()
            .map(|(shape, rate)| format!("| {shape} | {:.2} million |\n", rate / 1e6))
            .collect();
        format!(
            "Wall time traced / untraced: each traced run divided by the same round's untraced \
             run, median (min–max) over the rounds.\n\
             \n\
             {wall}\
             \n\
             The workload's own CPU time (user + sys, all its threads) traced / untraced, the same way:\n\
             \n\
             {cpu}\
             \n\
             Growth-probe hits per run (median):\n\
             \n\
             {hits}\
             \n\
             What one probe hit costs the target under `--exact` (its CPU time over the untraced \
             run's, over every mapleak probe that fired; where few fire, this is mostly noise):\n\
             \n\
             {per_hit}\
             \n\
             {}\n\
             \n\
             {}.\n\
             \n\
             | aggregator: one thread, 10 M synthetic growth records (12-frame stacks) over 100 000 map addresses | events/s |\n\
             |---|---|\n\
             {aggregator}\
             \n\
             `mapleak inspect` of a stripped {:.0} MB Go program (the Go compiler): {:.1} ms.\n\
             \n\
             Machine: {}. Command: `cargo xtask bench --runs {runs}` (as root).",
            self.goals(),
            self.bpftrace,
            self.inspect.0,
            self.inspect.1,
            self.machine,
        )
    }

    /// Whether the goals are met: default ≤ 1.03 everywhere, `--exact` no slower than bpftrace.
    fn goals(&self) -> String {
        let over: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.wall_ratio(Tracer::Mapleak) > DEFAULT_GOAL)
            .map(|r| format!("{} {:.2}", r.workload.name(), r.wall_ratio(Tracer::Mapleak)))
            .collect();
        let default = if over.is_empty() {
            "met".to_owned()
        } else {
            format!("**missed** ({})", over.join(", "))
        };
        let versus = |r: &Row| {
            format!(
                "{} {:.2} vs {:.2}",
                r.workload.name(),
                r.wall_ratio(Tracer::MapleakExact),
                r.wall_ratio(Tracer::Bpftrace)
            )
        };
        // Behind bpftrace beyond the machine's noise, and behind within it.
        let (slower, tied): (Vec<&Row>, Vec<&Row>) = self
            .rows
            .iter()
            .filter(|r| r.wall_ratio(Tracer::MapleakExact) > r.wall_ratio(Tracer::Bpftrace))
            .partition(|r| {
                r.wall_ratio(Tracer::MapleakExact) > r.wall_ratio(Tracer::Bpftrace) + r.noise()
            });
        let slower: Vec<String> = slower.into_iter().map(versus).collect();
        let tied: Vec<String> = tied
            .into_iter()
            .map(|r| format!("{}, within ±{:.0} %", versus(r), r.noise() * 100.0))
            .collect();
        let exact = match (slower.is_empty(), tied.is_empty()) {
            (false, _) => format!("**missed** ({})", slower.join(", ")),
            (true, true) => "met".to_owned(),
            (true, false) => format!(
                "met; behind by less than the untraced runs' own spread on {}",
                tied.join("; ")
            ),
        };
        format!(
            "Goals: mapleak default ≤ {DEFAULT_GOAL:.2} on every workload: {default}; \
             mapleak `--exact` no slower than bpftrace: {exact}."
        )
    }
}

/// `median (min–max)` with `decimals`; sorts `xs`.
fn with_range(xs: &mut [f64], decimals: usize) -> String {
    if xs.is_empty() {
        return "–".to_owned();
    }
    let m = median(xs);
    format!(
        "{m:.decimals$} ({:.decimals$}–{:.decimals$})",
        xs[0],
        xs[xs.len() - 1]
    )
}

/// `900 000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The median; sorts `xs`.
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

fn median_u64(xs: &mut [u64]) -> u64 {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median_u64(&mut [5, 1, 3]), 3);
        assert_eq!(
            with_range(&mut [12.0, 10.0, 11.0], 2),
            "11.00 (10.00–12.00)"
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(512), "512");
        assert_eq!(grouped(27_030), "27 030");
        assert_eq!(grouped(900_000), "900 000");
        assert_eq!(grouped(1_234_567), "1 234 567");
    }

    fn run(wall: f64, hits: u64) -> Run {
        Run {
            wall,
            cpu: wall,
            inserts: 1000,
            growth_hits: Some(hits),
            ..Run::default()
        }
    }

    #[test]
    fn ratios_pair_each_run_with_its_rounds_untraced_run() {
        let mut report = Report::new(2, "1.21.13", &[Workload::Churn]);
        for (u, d, e, b) in [(10.0, 10.2, 40.0, 20.0), (20.0, 20.0, 90.0, 40.0)] {
            report.push(
                Workload::Churn,
                Tracer::Untraced,
                Run {
                    growth_hits: None,
                    ..run(u, 0)
                },
            );
            report.push(Workload::Churn, Tracer::Mapleak, run(d, 10));
            report.push(Workload::Churn, Tracer::MapleakExact, run(e, 900));
            report.push(Workload::Churn, Tracer::Bpftrace, run(b, 900));
        }
        let row = &report.rows[0];
        assert_eq!(row.ratios(Tracer::MapleakExact, |r| r.wall), vec![4.0, 4.5]);
        assert!((row.wall_ratio(Tracer::Mapleak) - 1.01).abs() < 1e-9);
        assert_eq!(row.growth_hits(Tracer::Bpftrace), 900);
        report.check_hits().unwrap();
        assert_eq!(
            report.goals(),
            "Goals: mapleak default ≤ 1.03 on every workload: met; \
             mapleak `--exact` no slower than bpftrace: **missed** (churn 4.25 vs 2.00)."
        );
        let table = report.table();
        assert!(
            table.contains(
                "| 15.00 (10.00–20.00) | 1.01 (1.00–1.02) | 4.25 (4.00–4.50) | 2.00 (2.00–2.00) |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("| churn | 10 | 900 | 900 | 0 |\n"),
            "{table}"
        );
    }

    #[test]
    fn a_gap_inside_the_untraced_runs_spread_is_a_tie() {
        let mut report = Report::new(2, "1.21.13", &[Workload::Large]);
        // Untraced 9.5 and 10.5: ±5 % of noise. --exact 2 % behind bpftrace is within it.
        for (u, e, b) in [(9.5, 10.4, 10.2), (10.5, 10.5, 10.3)] {
            report.push(
                Workload::Large,
                Tracer::Untraced,
                Run {
                    growth_hits: None,
                    ..run(u, 0)
                },
            );
            report.push(Workload::Large, Tracer::Mapleak, run(u, 76));
            report.push(Workload::Large, Tracer::MapleakExact, run(e, 76));
            report.push(Workload::Large, Tracer::Bpftrace, run(b, 76));
        }
        assert!((report.rows[0].noise() - 0.05).abs() < 1e-9);
        assert!(
            report.goals().ends_with(
                "no slower than bpftrace: met; behind by less than the untraced runs' own \
                 spread on large 1.05 vs 1.03, within ±5 %."
            ),
            "{}",
            report.goals()
        );
    }

    #[test]
    fn silent_bpftrace_probes_are_an_error() {
        let mut report = Report::new(1, "1.21.13", &[Workload::Large]);
        report.push(Workload::Large, Tracer::MapleakExact, run(1.0, 76));
        report.push(Workload::Large, Tracer::Bpftrace, run(1.0, 0));
        assert!(report.check_hits().is_err());
    }
}
