//! The budget sweep: mapleak's default mode under budgets of 0.1, 1 and 10 % on the workloads
//! where the growth probes are expensive, each traced run against the median of the untraced
//! runs (one per round). The goal: the measured cost is at most the budget + 2 %, and never more
//! for a smaller budget — each judged beyond the untraced runs' own spread, which on a shared
//! machine can be larger than the budgets themselves.

use anyhow::Result;

use super::{
    report::median,
    workload::{self, Tools, Tracer, Workload},
};

/// `--max-overhead` values, in percent.
pub const BUDGETS: [f64; 3] = [0.1, 1.0, 10.0];
/// What the measurement may exceed the budget by (the goal).
const SLACK: f64 = 0.02;
/// The workloads worth sweeping: where probes fire often enough to need the governor.
pub const WORKLOADS: [Workload; 4] = [
    Workload::Churn,
    Workload::Stack,
    Workload::Parallel,
    Workload::Assist,
];

pub struct Sweep {
    runs: u32,
    rows: Vec<SweepRow>,
}

struct SweepRow {
    workload: Workload,
    untraced: Vec<f64>,
    /// Wall ns/op under each budget, one per round.
    traced: [Vec<f64>; BUDGETS.len()],
}

impl SweepRow {
    /// Each traced run over the median untraced run.
    fn ratios(&self) -> [Vec<f64>; BUDGETS.len()] {
        let base = median(&mut self.untraced.clone());
        self.traced
            .clone()
            .map(|runs| runs.into_iter().map(|w| w / base).collect())
    }

    /// Half the untraced runs' relative spread: differences below it are the machine's.
    fn noise(&self) -> f64 {
        let lo = self.untraced.iter().copied().fold(f64::MAX, f64::min);
        let hi = self.untraced.iter().copied().fold(f64::MIN, f64::max);
        (hi - lo) / 2.0 / median(&mut self.untraced.clone())
    }
}

/// Runs every workload of `workloads` that is worth sweeping, `runs` rounds.
pub fn run(tools: &Tools, workloads: &[Workload], runs: u32) -> Result<Sweep> {
    let mut rows = Vec::new();
    for &w in WORKLOADS.iter().filter(|w| workloads.contains(w)) {
        let mut row = SweepRow {
            workload: w,
            untraced: Vec::new(),
            traced: Default::default(),
        };
        for round in 0..runs {
            let untraced = workload::run(tools, w, Tracer::Untraced, round)?;
            row.untraced.push(untraced.wall);
            let mut line = format!(
                "bench: sweep {}/{runs} {:<8} | untraced {:.2} ns/op",
                round + 1,
                w.name(),
                untraced.wall
            );
            // Rotated, so that no budget always runs right after the untraced run.
            for k in 0..BUDGETS.len() {
                let i = (k + round as usize) % BUDGETS.len();
                let traced =
                    workload::run_with(tools, w, Tracer::Mapleak, round, Some(BUDGETS[i]))?;
                line.push_str(&format!(" | {}% {:.2}", BUDGETS[i], traced.wall));
                row.traced[i].push(traced.wall);
            }
            println!("{line}");
        }
        rows.push(row);
    }
    Ok(Sweep { runs, rows })
}

impl Sweep {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The results as markdown, with the goal met or missed per workload.
    pub fn table(&self) -> String {
        let mut out = format!(
            "| wall time traced / median untraced, median of {} rounds | {} | untraced spread | goal: ≤ budget + 2 %, never more for a smaller budget (beyond the spread) |\n|---|{}---|---|\n",
            self.runs,
            BUDGETS
                .iter()
                .map(|b| format!("`--max-overhead {b}`"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(BUDGETS.len())
        );
        for row in &self.rows {
            let ratios = row.ratios();
            let noise = row.noise();
            let medians: Vec<f64> = ratios.iter().map(|r| median(&mut r.clone())).collect();
            let cells: Vec<String> = ratios
                .iter()
                .zip(&medians)
                .map(|(r, m)| {
                    let lo = r.iter().copied().fold(f64::MAX, f64::min);
                    let hi = r.iter().copied().fold(f64::MIN, f64::max);
                    format!("{m:.3} ({lo:.2}–{hi:.2})")
                })
                .collect();
            out.push_str(&format!(
                "| {} | {} | ±{:.1} % | {} |\n",
                row.workload.name(),
                cells.join(" | "),
                noise * 100.0,
                verdict(&medians, noise)
            ));
        }
        out
    }
}

/// `met`, or what missed: a median above its budget + 2 %, or above a larger budget's, by more
/// than `noise`.
fn verdict(medians: &[f64], noise: f64) -> String {
    let mut missed = Vec::new();
    for (b, m) in BUDGETS.iter().zip(medians) {
        if *m > 1.0 + b / 100.0 + SLACK + noise {
            missed.push(format!("{b}% costs {:.1}%", (m - 1.0) * 100.0));
        }
    }
    for (i, pair) in medians.windows(2).enumerate() {
        if pair[0] > pair[1] + noise {
            missed.push(format!(
                "{}% costs more than {}%",
                BUDGETS[i],
                BUDGETS[i + 1]
            ));
        }
    }
    if missed.is_empty() {
        "met".to_owned()
    } else {
        format!("**missed** ({})", missed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_names_each_miss_beyond_the_noise() {
        assert_eq!(verdict(&[1.01, 1.02, 1.11], 0.0), "met");
        assert_eq!(
            verdict(&[1.05, 1.02, 1.11], 0.0),
            "**missed** (0.1% costs 5.0%; 0.1% costs more than 1%)"
        );
        assert_eq!(
            verdict(&[1.0, 1.0, 1.13], 0.0),
            "**missed** (10% costs 13.0%)"
        );
        // Within the untraced runs' own spread: a tie, not a miss.
        assert_eq!(verdict(&[1.05, 1.02, 1.13], 0.04), "met");
    }
}
