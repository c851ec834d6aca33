//! The bpftrace baseline: uprobes on the same instructions as mapleak's growth probes, each
//! counting hits per user stack (`@[ustack] = count();`: a stack id from the kernel's stack map
//! and a hash-map update per hit, as mapleak's growth probe takes a stack id and writes a
//! ring-buffer record).
//!
//! Debian 12's bpftrace 0.17 cannot place a uprobe at `symbol+offset` (it is built without the
//! disassembler that checks the offset, and then refuses any non-zero offset, `--unsafe` or not),
//! and an address inside a known symbol is turned back into `symbol+offset`. What it does accept,
//! with `--unsafe`, is an address that lies in no symbol, which it passes to the kernel as a raw
//! file offset. So the script names each probe by its file offset from `mapleak inspect`
//! (`attach_offset`, the post-prologue instruction): in a non-PIE Go binary, which is loaded from
//! 0x400000, a file offset is below every symbol. The hit counts are checked against mapleak
//! `--exact`'s, which proves the probes sit where mapleak's do.
//!
//! bpftrace 0.17 prints "Attaching N probes..." before it attaches them, so the bench waits for
//! the line it prints to stderr after the last attach when `__BPFTRACE_NOTIFY_PROBES_ATTACHED`
//! is set, and stops bpftrace with SIGINT once the workload has exited.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{Child, Command, Stdio},
    thread::{self, JoinHandle},
};

use anyhow::{Context as _, Result, bail};

use super::workload::GROWTH_SYMBOLS;

/// bpftrace prints this line to stderr once every probe is attached, when the variable is set.
const NOTIFY: &str = "__BPFTRACE_NOTIFY_PROBES_ATTACHED";

/// `bpftrace --version`, installing Debian's package first if bpftrace is missing.
pub fn ensure_installed(log: &Path) -> Result<String> {
    if let Some(version) = version() {
        return Ok(version);
    }
    println!(
        "bench: bpftrace is missing; installing Debian's package (log: {})",
        log.display()
    );
    crate::run_logged(Command::new("apt-get").args(["update", "-q"]), log)?;
    crate::run_logged(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "bpftrace"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        log,
    )?;
    version().context("installed Debian's bpftrace, but `bpftrace --version` does not run")
}

fn version() -> Option<String> {
    crate::output(Command::new("bpftrace").arg("--version")).map(|v| v.trim().to_owned())
}

/// One uprobe of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub symbol: String,
    pub post_prologue: u64,
    pub file_offset: u64,
}

/// The bpftrace program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub probes: Vec<Probe>,
    pub text: String,
}

impl Script {
    /// A uprobe on each of mapleak's growth probes in `inspection` (`mapleak inspect BINARY
    /// --format json`), all feeding `@[ustack] = count();`.
    pub fn new(binary: &Path, inspection: &serde_json::Value) -> Result<Script> {
        let path = binary
            .to_str()
            .context("the workload's path is not UTF-8")?;
        if path.contains(|c: char| c.is_whitespace() || ",:{}\"".contains(c)) {
            bail!(
                "bpftrace cannot name a probe in {path:?}: it contains a space, comma, colon, brace or quote"
            );
        }
        let first_load = inspection["first_load_vaddr"]
            .as_u64()
            .context("`mapleak inspect` gave no `first_load_vaddr`")?;
        let mut probes = Vec::new();
        for p in inspection["probes"]
            .as_array()
            .context("`mapleak inspect` gave no `probes`")?
        {
            let symbol = p["symbol"].as_str().unwrap_or_default();
            if !GROWTH_SYMBOLS.contains(&symbol) {
                continue;
            }
            let (Some(post_prologue), Some(file_offset)) =
                (p["post_prologue"].as_u64(), p["attach_offset"].as_u64())
            else {
                bail!(
                    "a probe from `mapleak inspect` lacks `post_prologue` or `attach_offset`: {p}"
                );
            };
            if file_offset >= first_load {
                bail!(
                    "{symbol}: file offset {file_offset:#x} may fall inside a symbol (the binary \
                     loads from {first_load:#x}); bpftrace 0.17 would then refuse the offset"
                );
            }
            probes.push(Probe {
                symbol: symbol.to_owned(),
                post_prologue,
                file_offset,
            });
        }
        if probes.is_empty() {
            bail!("`mapleak inspect` lists no growth probe for {path}");
        }
        let mut text = String::from(
            "// mapleak's growth probes, by file offset (bpftrace 0.17 refuses symbol+offset)\n",
        );
        let points: Vec<String> = probes
            .iter()
            .map(|p| {
                format!(
                    "// {}+{:#x}\nuprobe:{path}:{:#x}",
                    p.symbol, p.post_prologue, p.file_offset
                )
            })
            .collect();
        text.push_str(&points.join(",\n"));
        text.push_str("\n{\n  @[ustack] = count();\n}\n");
        Ok(Script { probes, text })
    }

    /// `uprobe at runtime.hashGrow+0xa (file offset 0xe24a)` for the report.
    pub fn describe(&self) -> String {
        let probes: Vec<String> = self
            .probes
            .iter()
            .map(|p| {
                format!(
                    "`{}+{:#x}` (file offset {:#x})",
                    p.symbol, p.post_prologue, p.file_offset
                )
            })
            .collect();
        format!(
            "`@[ustack] = count();` on a uprobe at {}",
            probes.join(", ")
        )
    }
}

/// A running bpftrace whose probes are attached.
pub struct Bpftrace {
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
    probes: usize,
}

/// Starts `bpftrace --unsafe SCRIPT` and returns once its `probes` uprobes are attached.
pub fn attach(script: &Path, probes: usize) -> Result<Bpftrace> {
    let mut child = Command::new("bpftrace")
        .arg("--unsafe")
        .arg(script)
        .env(NOTIFY, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start bpftrace")?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let stdout = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut stderr = BufReader::new(child.stderr.take().context("no stderr")?);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = match stderr.read_line(&mut line) {
            Ok(n) => n,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e).context("reading bpftrace's stderr");
            }
        };
        if n == 0 {
            let status = child.wait()?;
            let out = stdout.join().unwrap_or_default();
            bail!("bpftrace exited ({status}) before attaching its probes:\n{seen}{out}");
        }
        if line.trim_end() == NOTIFY {
            break;
        }
        seen.push_str(&line);
    }
    // Keep draining stderr so that bpftrace never blocks on a full pipe.
    let stderr = thread::spawn(move || {
        let _ = stderr.read_to_string(&mut seen);
        seen
    });
    Ok(Bpftrace {
        child,
        stdout,
        stderr,
        probes,
    })
}

impl Bpftrace {
    /// SIGINT, then the total of `@`'s counts: the growth probes' hits.
    pub fn stop(mut self) -> Result<u64> {
        crate::run(Command::new("kill").args(["-s", "INT", &self.child.id().to_string()]))?;
        let status = self.child.wait()?;
        let out = self.stdout.join().unwrap_or_default();
        let err = self.stderr.join().unwrap_or_default();
        if !status.success() {
            bail!("bpftrace failed ({status}):\n{err}{out}");
        }
        hits(&out, self.probes).with_context(|| format!("bpftrace's output:\n{err}{out}"))
    }

    /// For failures: SIGKILL (the kernel detaches its probes when its descriptors close).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// From bpftrace's output: checks `Attaching N probes...` and sums the counts printed for `@`,
/// one `@[...]: N` or `]: N` line per stack. (Not `-f json`: there, two stack ids that print the
/// same frames become duplicate keys of one JSON object.)
fn hits(out: &str, probes: usize) -> Result<u64> {
    let mut attached = None;
    let mut total = 0;
    for line in out.lines().map(str::trim) {
        if let Some(n) = line
            .strip_prefix("Attaching ")
            .and_then(|rest| rest.split_once(' '))
            .filter(|(_, what)| what.starts_with("probe"))
        {
            attached = n.0.parse::<usize>().ok();
        } else if line.starts_with('@') || line.starts_with(']') {
            let Some((_, count)) = line.rsplit_once(": ") else {
                continue;
            };
            total += count
                .parse::<u64>()
                .with_context(|| format!("a count of `@` is not a number: {line:?}"))?;
        }
    }
    match attached {
        Some(n) if n == probes => Ok(total),
        Some(n) => bail!("bpftrace attached {n} probes, not {probes}"),
        None => bail!("bpftrace did not say how many probes it attached"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspection() -> serde_json::Value {
        serde_json::from_str(
            r#"{"first_load_vaddr":4194304,"probes":[
                {"symbol":"runtime.hashGrow","post_prologue":10,"attach_offset":57930},
                {"symbol":"runtime.stopTheWorldWithSema","post_prologue":10,"attach_offset":222250}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_script_probes_the_growth_probes_by_file_offset() {
        let script = Script::new(Path::new("/t/bench"), &inspection()).unwrap();
        assert_eq!(script.probes.len(), 1);
        assert!(
            script.text.contains(
                "// runtime.hashGrow+0xa\nuprobe:/t/bench:0xe24a\n{\n  @[ustack] = count();\n}\n"
            ),
            "{}",
            script.text
        );
        assert_eq!(
            script.describe(),
            "`@[ustack] = count();` on a uprobe at `runtime.hashGrow+0xa` (file offset 0xe24a)"
        );
    }

    #[test]
    fn refuses_offsets_bpftrace_would_resolve_to_a_symbol() {
        let mut pie = inspection();
        pie["first_load_vaddr"] = 0.into();
        assert!(Script::new(Path::new("/t/bench"), &pie).is_err());
        assert!(Script::new(Path::new("/t/my bench"), &inspection()).is_err());
    }

    #[test]
    fn sums_the_counts_per_stack() {
        // Two stack ids can print the same frames: both counts are kept.
        let out = "Attaching 1 probe...\n\n\n@[\n    0x40e24a\n    0x40f819\n]: 2962\n\
                   @[\n    0x40e24a\n    0x40f819\n]: 414755\n@[]: 3\n";
        assert_eq!(hits(out, 1).unwrap(), 417720);
        assert!(hits(out, 2).is_err());
        assert!(hits("Attaching 2 probes...\n", 1).is_err());
        assert_eq!(hits("Attaching 2 probes...\n\n\n", 2).unwrap(), 0);
        assert!(hits("@[]: x\n", 1).is_err());
    }
}
