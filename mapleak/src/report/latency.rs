//! The LATENCY section: the answer to "my P99 jumped: is it the GC, and who pays?", first in
//! the text report, in at most two lines.

use super::{
    assist::AssistTimes,
    findings::FindingKind,
    summary::Summary,
    units::{count, duration, percent},
};

/// The section, or `None` when there is nothing to say (no assist probes, no GC sentence).
pub fn section(s: &Summary) -> Option<String> {
    // The first line: what the GC cost the process, then who paid it in assists.
    let first: Vec<String> = [gc_cpu(s), assists(s)].into_iter().flatten().collect();
    let lines: Vec<String> = [
        (!first.is_empty()).then(|| format!("{}.", first.join("; "))),
        map_share(s),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!lines.is_empty()).then(|| format!("\nLATENCY\n{}\n", lines.join("\n")))
}

/// "GC used 12 % of CPU", from the runtime's per-cycle accounting (idle marking excluded, as
/// `GCCPUFraction` counts it).
fn gc_cpu(s: &Summary) -> Option<String> {
    let fraction = s.gc.cpu_fraction.filter(|_| s.gc.cycles > 0)?;
    Some(format!("GC used {} of CPU", percent(fraction)))
}

/// "Map growth is 62 % of all allocation: the fixes below save about 17 GC cycles a minute".
fn map_share(s: &Summary) -> Option<String> {
    // gc_pressure sums the others: not a fix of its own.
    let fixes = s
        .findings
        .iter()
        .filter(|f| f.kind != FindingKind::GcPressure)
        .filter_map(|f| Some((f.file.as_str(), f.line, f.gc.as_ref()?.cycles_per_min)));
    map_share_sentence(s.gc.map_alloc_share?, fixes)
}

/// The sentence, when the share is a tenth or more; fixes at one line are one change, counted
/// once at their best saving.
fn map_share_sentence<'a>(
    share: f64,
    fixes: impl Iterator<Item = (&'a str, u32, f64)>,
) -> Option<String> {
    if share < 0.1 {
        return None;
    }
    let mut per_line: Vec<(&str, u32, f64)> = Vec::new();
    for (file, line, per_min) in fixes {
        match per_line.iter_mut().find(|l| l.0 == file && l.1 == line) {
            Some(seen) => seen.2 = seen.2.max(per_min),
            None => per_line.push((file, line, per_min)),
        }
    }
    let saved: f64 = per_line.iter().map(|l| l.2).sum();
    let fixes = if saved >= 0.5 {
        format!(": the fixes below save about {saved:.0} GC cycles a minute")
    } else {
        String::new()
    };
    Some(format!(
        "Map growth is {} of all allocation{fixes}.",
        percent(share)
    ))
}

/// "goroutines at `pkg.F` f.go:88 and 2 more spent 340 ms in assists (P99 18 ms, max 41 ms)".
fn assists(s: &Summary) -> Option<String> {
    let overall = s.assist_overall.as_ref()?;
    let top = overall
        .top
        .as_ref()
        .map(|top| (top.function.as_str(), top.file.as_str(), top.line));
    Some(assists_sentence(
        &overall.times,
        overall.sampled,
        top,
        overall.other_lines,
    ))
}

/// The assists clause from the overall times, the site that paid most and how many others did.
fn assists_sentence(
    all: &AssistTimes,
    sampled: bool,
    top: Option<(&str, &str, u32)>,
    more: usize,
) -> String {
    let seen = if sampled {
        " (seen while the assist probes were attached)"
    } else {
        ""
    };
    // A call that finds the limiter on means the GC wanted more than half the CPU: worth
    // saying beside the assists too, since it is the cue that the memory limit is too tight.
    let limited = match all.limiter_calls {
        0 => String::new(),
        n => format!(
            "; {} more calls found the GC CPU limiter on (the GC wanted over half the CPU) and paid nothing",
            count(n)
        ),
    };
    let Some((function, file, line)) = top.filter(|_| all.count > 0) else {
        return format!("no goroutine waited in a GC mark assist{seen}{limited}");
    };
    let more = match more {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let mut parts = vec![format!("{} marking", duration(all.work_ns))];
    if all.in_mark_termination_ns > 0 {
        parts.push(format!(
            "{} running mark termination",
            duration(all.in_mark_termination_ns)
        ));
    }
    if all.parked_ns > 0 {
        parts.push(format!("{} parked", duration(all.parked_ns)));
    }
    format!(
        "goroutines at `{function}` {}:{line}{more} spent {} in {} GC mark assists{seen} (P99 {}, max {}; of it {}){limited}",
        short_file(file),
        duration(all.total_ns),
        count(all.count),
        duration(all.p99_ns),
        duration(all.max_ns),
        parts.join(", "),
    )
}

/// The file's name without its directories, as the summary line has room for.
fn short_file(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_share_counts_each_line_once_and_says_nothing_small() {
        let fixes = [("a.go", 10, 6.0), ("a.go", 10, 9.0), ("b.go", 3, 8.4)];
        assert_eq!(
            map_share_sentence(0.62, fixes.into_iter()).as_deref(),
            Some(
                "Map growth is 62% of all allocation: the fixes below save about 17 GC cycles a minute."
            )
        );
        assert_eq!(
            map_share_sentence(0.25, std::iter::empty()).as_deref(),
            Some("Map growth is 25% of all allocation.")
        );
        assert_eq!(map_share_sentence(0.05, fixes.into_iter()), None);
    }

    #[test]
    fn the_limiter_is_named_with_or_without_paying_assists() {
        let mut all = AssistTimes {
            count: 3,
            total_ns: 3_000_000,
            p50_ns: 1_000_000,
            p99_ns: 1_500_000,
            max_ns: 1_500_000,
            work_ns: 2_000_000,
            limiter_calls: 1400,
            ..AssistTimes::default()
        };
        let top = Some(("main.fill", "/src/app/main.go", 54));
        assert_eq!(
            assists_sentence(&all, false, top, 2),
            "goroutines at `main.fill` main.go:54 and 2 more spent 3.00 ms in 3 GC mark assists \
             (P99 1.50 ms, max 1.50 ms; of it 2.00 ms marking); 1 400 more calls found the GC CPU \
             limiter on (the GC wanted over half the CPU) and paid nothing"
        );
        all.count = 0;
        assert_eq!(
            assists_sentence(&all, true, None, 0),
            "no goroutine waited in a GC mark assist (seen while the assist probes were attached); \
             1 400 more calls found the GC CPU limiter on (the GC wanted over half the CPU) and paid nothing"
        );
        all.limiter_calls = 0;
        assert_eq!(
            assists_sentence(&all, false, None, 0),
            "no goroutine waited in a GC mark assist"
        );
    }
}
