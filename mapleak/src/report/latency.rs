//! The LATENCY section: the answer to "my P99 jumped: is it the GC, and who pays?", first in
//! the text report, in at most two lines.

use super::{summary::Summary, units::duration};

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

/// Hook: the GC's share of the process's CPU ("GC used 12 % of CPU"), from the runtime's
/// per-cycle accounting, once the report carries it.
fn gc_cpu(_s: &Summary) -> Option<String> {
    None
}

/// Hook: map growth's share of all allocation and the GC cycles the findings would save
/// ("Map growth is 62 % of all allocation: the fixes below save about 17 GC cycles a minute"),
/// once the report carries it.
fn map_share(_s: &Summary) -> Option<String> {
    None
}

/// "goroutines at `pkg.F` f.go:88 and 2 more spent 340 ms in assists (P99 18 ms, max 41 ms)".
fn assists(s: &Summary) -> Option<String> {
    let all = s.assist_overall.as_ref()?;
    let seen = if all.sampled {
        " (seen while the assist probes were attached)"
    } else {
        ""
    };
    let Some(top) = s.assists.first().filter(|_| all.count > 0) else {
        let limited = if all.limiter_calls > 0 {
            format!(
                " ({} calls were cut short by the GC CPU limiter, which paid nothing)",
                all.limiter_calls
            )
        } else {
            String::new()
        };
        return Some(format!(
            "no goroutine waited in a GC mark assist{seen}{limited}"
        ));
    };
    let more = match s.assists.len() - 1 {
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
    let of_it = format!("; of it {}", parts.join(", "));
    Some(format!(
        "goroutines at `{}` {}:{}{more} spent {} in {} GC mark assists{seen} (P99 {}, max {}{of_it})",
        top.function,
        short_file(&top.file),
        top.line,
        duration(all.total_ns),
        all.count,
        duration(all.p99_ns),
        duration(all.max_ns),
    ))
}

/// The file's name without its directories, as the summary line has room for.
fn short_file(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}
