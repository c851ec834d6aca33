//! The budget sweep: mapleak's default mode under budgets of 0.1, 1 and 10 % on the workloads
//! where the growth probes are expensive, each traced run against the same round's untraced
//! run. The goal: the measured cost is at most the budget + 2 %, and never more for a smaller
//! budget.

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
pub const WORKLOADS: [Workload; 3] = [Workload::Churn, Workload::Stack, Workload::Parallel];

pub struct Sweep {
    runs: u32,
    /// Per workload: the per-round wall-time ratio under each budget.
    rows: Vec<(Workload, [Vec<f64>; BUDGETS.len()])>,
}

/// Runs every workload of `workloads` that is worth sweeping, `runs` rounds.
pub fn run(tools: &Tools, workloads: &[Workload], runs: u32) -> Result<Sweep> {
    let mut rows = Vec::new();
    for &w in WORKLOADS.iter().filter(|w| workloads.contains(w)) {
        let mut ratios: [Vec<f64>; BUDGETS.len()] = Default::default();
        for round in 0..runs {
            let untraced = workload::run(tools, w, Tracer::Untraced, round)?;
            let mut line = format!("bench: sweep {}/{runs} {:<8}", round + 1, w.name());
            // Rotated, so that no budget always runs right after the untraced run.
            for k in 0..BUDGETS.len() {
                let i = (k + round as usize) % BUDGETS.len();
                let traced =
                    workload::run_with(tools, w, Tracer::Mapleak, round, Some(BUDGETS[i]))?;
                let ratio = traced.wall / untraced.wall;
                line.push_str(&format!(" | {}% {ratio:.3}", BUDGETS[i]));
                ratios[i].push(ratio);
            }
            println!("{line}");
        }
        rows.push((w, ratios));
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
            "| wall time traced / untraced, median of {} rounds | {} | goal: ≤ budget + 2 %, never more for a smaller budget |\n|---|{}---|\n",
            self.runs,
            BUDGETS
                .iter()
                .map(|b| format!("`--max-overhead {b}`"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(BUDGETS.len())
        );
        for (w, ratios) in &self.rows {
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
                "| {} | {} | {} |\n",
                w.name(),
                cells.join(" | "),
                verdict(&medians)
            ));
        }
        out
    }
}

/// `met`, or what missed: a median above its budget + 2 %, or above a larger budget's.
fn verdict(medians: &[f64]) -> String {
    let mut missed = Vec::new();
    for (b, m) in BUDGETS.iter().zip(medians) {
        if *m > 1.0 + b / 100.0 + SLACK {
            missed.push(format!("{b}% costs {:.1}%", (m - 1.0) * 100.0));
        }
    }
    for (i, pair) in medians.windows(2).enumerate() {
        if pair[0] > pair[1] {
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
    fn the_verdict_names_each_miss() {
        assert_eq!(verdict(&[1.01, 1.02, 1.11]), "met");
        assert_eq!(
            verdict(&[1.05, 1.02, 1.11]),
            "**missed** (0.1% costs 5.0%; 0.1% costs more than 1%)"
        );
        assert_eq!(verdict(&[1.0, 1.0, 1.13]), "**missed** (10% costs 13.0%)");
    }
}
