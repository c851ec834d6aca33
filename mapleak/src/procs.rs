//! The Go processes on this machine, for `mapleak ps` and `mapleak trace --name`.

use std::{collections::HashMap, fs, io, os::unix::fs::MetadataExt};

use serde::Serialize;

use crate::{
    inspect::{self, InspectError, MapImpl},
    trace::{privileges, target},
};

/// A process running a Go program, and whether mapleak can trace it.
#[derive(Clone, Debug, Serialize)]
pub struct GoProcess {
    pub pid: u32,
    /// The kernel's name for it (`/proc/PID/comm`).
    pub name: String,
    /// Its command line, as `ps` shows it.
    pub command: String,
    pub exe: String,
    /// `None` when the binary could not be inspected (see `why_not`).
    pub go_version: Option<String>,
    pub map_impl: Option<MapImpl>,
    /// Why `mapleak trace` would refuse it, in the sentence it would say; `None` if it can.
    pub why_not: Option<String>,
}

/// What a look at every process found.
#[derive(Debug, Default)]
pub struct Scan {
    pub go: Vec<GoProcess>,
    /// Processes that passed the filter but run something else: (pid, name).
    pub other: Vec<(u32, String)>,
    /// Processes whose executable could not be looked at (another user's, without privileges).
    pub unreadable: usize,
}

/// What one executable file is, inspected once however many processes run it.
#[derive(Clone)]
enum Binary {
    Go {
        version: String,
        map_impl: MapImpl,
    },
    /// Go, by every sign, but not one mapleak can trace (the sentence says why).
    Refused(String),
    Other,
}

/// Every process except mapleak itself whose name or executable's file name `wanted` accepts.
pub fn scan(wanted: impl Fn(&str, &str) -> bool) -> Scan {
    let own = std::process::id();
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != own)
        .collect();
    pids.sort_unstable();
    let mut binaries: HashMap<(u64, u64), Binary> = HashMap::new();
    let mut scan = Scan::default();
    for pid in pids {
        let exe_path = target::exe_path(pid);
        let exe = match fs::read_link(&exe_path) {
            Ok(exe) => exe.display().to_string(),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                scan.unreadable += 1;
                continue;
            }
            // Kernel threads have no executable; a process may have exited since.
            Err(_) => continue,
        };
        let name = fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|n| n.trim_end().to_owned())
            .unwrap_or_default();
        let file = exe.trim_end_matches(" (deleted)");
        let file = file.rsplit('/').next().unwrap_or(file);
        if !wanted(&name, file) {
            continue;
        }
        let Ok(meta) = fs::metadata(&exe_path) else {
            continue;
        };
        let binary = binaries
            .entry((meta.dev(), meta.ino()))
            .or_insert_with(|| classify(&exe_path))
            .clone();
        let (go_version, map_impl, refused) = match binary {
            Binary::Other => {
                scan.other.push((pid, name));
                continue;
            }
            Binary::Go { version, map_impl } => (Some(version), Some(map_impl), None),
            Binary::Refused(why) => (None, None, Some(why)),
        };
        let why_not = refused.or_else(|| {
            target::check_traceable(pid)
                .and_then(|()| privileges::check(pid))
                .err()
                .map(|e| e.to_string())
        });
        scan.go.push(GoProcess {
            pid,
            command: command_line(pid).unwrap_or_else(|| format!("[{name}]")),
            name,
            exe,
            go_version,
            map_impl,
            why_not,
        });
    }
    scan
}

fn classify(exe_path: &str) -> Binary {
    match inspect::inspect_file(exe_path) {
        Ok(i) => Binary::Go {
            version: i.go_version,
            map_impl: i.map_impl,
        },
        Err(InspectError::NotGo(_) | InspectError::NotElf(_) | InspectError::Io { .. }) => {
            Binary::Other
        }
        Err(e) => Binary::Refused(e.to_string()),
    }
}

/// `/proc/PID/cmdline` with its NULs as spaces; `None` when empty (a zombie).
fn command_line(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The pid of the one Go process whose name or executable's file name matches `pattern`. When
/// none or several do, the error says so (and several are listed on stderr first).
pub fn one_named(pattern: &regex::Regex) -> Result<u32, String> {
    let scan = scan(|name, file| pattern.is_match(name) || pattern.is_match(file));
    match scan.go.as_slice() {
        [one] => Ok(one.pid),
        [] => Err(format!(
            "no Go process matches {:?}{}",
            pattern.as_str(),
            why_none(&scan)
        )),
        many => {
            let mut table = Vec::new();
            let _ = render(&mut table, many);
            crate::trace::say(&format!(
                "{} Go processes match {:?}:\n{}",
                many.len(),
                pattern.as_str(),
                String::from_utf8_lossy(&table).trim_end()
            ));
            Err("give the one to trace with --pid".into())
        }
    }
}

/// What else the scan saw, when no Go process matched.
fn why_none(scan: &Scan) -> String {
    let mut why = String::new();
    if let Some((pid, name)) = scan.other.first() {
        let more = match scan.other.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        why.push_str(&format!(
            " ({name}, pid {pid}{more}, matches but is not a Go program)"
        ));
    }
    if scan.unreadable > 0 {
        why.push_str(&format!("; {}", unreadable(scan.unreadable)));
    }
    why
}

/// Says how many processes could not be looked at, and what would help.
pub fn unreadable(count: usize) -> String {
    // SAFETY: geteuid has no preconditions.
    let hint = if unsafe { libc::geteuid() } == 0 {
        "ptrace access to them is denied"
    } else {
        "run as root to see every process"
    };
    format!("{count} process(es) could not be looked at: {hint}")
}

/// The `mapleak ps` table: one line per process, and the reason under one that cannot be traced.
pub fn render(out: &mut impl io::Write, procs: &[GoProcess]) -> io::Result<()> {
    writeln!(out, "{:>8}  {:<10}  {:<7}  COMMAND", "PID", "GO", "MAPS")?;
    for p in procs {
        writeln!(
            out,
            "{:>8}  {:<10}  {:<7}  {}",
            p.pid,
            p.go_version.as_deref().unwrap_or("?"),
            p.map_impl.map_or("?", MapImpl::as_str),
            p.command
        )?;
        if let Some(why) = &p.why_not {
            writeln!(out, "{:>8}  not traceable: {why}", "")?;
        }
    }
    Ok(())
}
