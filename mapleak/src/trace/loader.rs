//! Loading the eBPF object, attaching probes at planned offsets, reading kernel counters.

use std::num::NonZeroU32;

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{
        TracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
    },
};
use mapleak_common::{
    ProbeId, maps,
    probe::{COUNTER_LOST, COUNTER_READ_ERRORS},
};

use super::{TraceError, target};
use crate::{
    catalogue::{At, ProbeGroup, SYSCALLS},
    inspect::{Inspection, ProbeSite},
    report::{KernelCounters, ProbeHits},
};

/// The kernel programs, built by build.rs from `mapleak-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mapleak"));

/// How this kernel attaches uprobes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UprobeMode {
    /// `uprobe.multi` links (Linux 6.6+, with the process-wide pid filter): one system call in
    /// or out with the program already on it, no perf event bound to the target's threads, and
    /// no CAP_SYS_ADMIN needed.
    Multi,
    /// One perf event per probe address (older kernels; `MAPLEAK_UPROBES=perf` forces it).
    Perf,
}

impl UprobeMode {
    /// The mode for this kernel, found once. A feature probe refused for lack of privileges
    /// counts as multi: the privilege check then names what loading programs needs, and the
    /// next run, so privileged, probes again.
    pub fn detect() -> Self {
        static MODE: std::sync::OnceLock<UprobeMode> = std::sync::OnceLock::new();
        *MODE.get_or_init(|| {
            if std::env::var("MAPLEAK_UPROBES").is_ok_and(|v| v == "perf") {
                return UprobeMode::Perf;
            }
            match aya::sys::is_uprobe_multi_supported(
                aya::sys::UProbeMultiFeature::ProcessScopedPidFilter,
            ) {
                Ok(false) => UprobeMode::Perf,
                Ok(true) | Err(_) => UprobeMode::Multi,
            }
        })
    }

    /// The eBPF program for `probe` in this mode (each uprobe program is built both ways).
    pub fn program(self, probe: ProbeId) -> std::borrow::Cow<'static, str> {
        match self {
            UprobeMode::Perf => probe.program().into(),
            UprobeMode::Multi => format!("{}_m", probe.program()).into(),
        }
    }
}

/// One uprobe program and where it goes, attached or not.
struct Uprobe {
    probe: ProbeId,
    group: ProbeGroup,
    symbol: &'static str,
    /// Where it sits, for people: `symbol+0xa`, or `symbol (2 RETs)`.
    label: String,
    /// File offsets in the target's executable.
    offsets: Vec<u64>,
    link: Option<UProbeLinkId>,
}

impl Uprobe {
    /// `probe` after the planned function's prologue.
    fn at_entry(site: &ProbeSite, probe: ProbeId) -> Self {
        Self {
            probe,
            group: site.group(),
            symbol: site.symbol(),
            label: format!("{}+{:#x}", site.symbol(), site.post_prologue),
            offsets: vec![site.attach_offset],
            link: None,
        }
    }

    /// `probe` on every RET of the planned function.
    fn at_rets(site: &ProbeSite, probe: ProbeId) -> Self {
        let rets = site.ret_offsets.len();
        Self {
            probe,
            group: site.group(),
            symbol: site.symbol(),
            label: format!(
                "{} ({rets} RET{})",
                site.symbol(),
                if rets == 1 { "" } else { "s" }
            ),
            offsets: site
                .ret_offsets
                .iter()
                .map(|r| site.file_offset + r)
                .collect(),
            link: None,
        }
    }

    /// The programs `site` places: its entry, its RETs, or both (the RETs where it has any).
    fn of(site: &ProbeSite) -> impl Iterator<Item = Self> {
        site.spec.probes().filter_map(|(probe, at)| match at {
            At::Entry => Some(Self::at_entry(site, probe)),
            At::Rets if site.ret_offsets.is_empty() => None,
            At::Rets => Some(Self::at_rets(site, probe)),
        })
    }
}

pub struct Loaded {
    ebpf: Ebpf,
    mode: UprobeMode,
    pid: u32,
    /// The pinned image's path (`/proc/self/fd/N`): every attach goes to the file inspected.
    exe: String,
    uprobes: Vec<Uprobe>,
    /// Tracepoint-based probes (never detached: they cost no trap).
    syscalls: Vec<(ProbeId, &'static str)>,
}

/// Loads the object with the target's offsets and a ring buffer of `ring_size` bytes.
pub fn load(config: &mapleak_common::Config, ring_size: u32) -> Result<Loaded, TraceError> {
    check_kernel()?;
    if let Some(field) = config.unreadable_field() {
        return Err(TraceError::UnreadableField(field));
    }
    if EBPF_OBJECT.is_empty() {
        return Err(TraceError::NoObject);
    }
    let ebpf = EbpfLoader::new()
        .override_global("CONFIG", config, true)
        .map_max_entries(maps::EVENTS, ring_size)
        .load(EBPF_OBJECT)
        .map_err(|e| TraceError::Load(Box::new(e)))?;
    Ok(Loaded {
        ebpf,
        mode: UprobeMode::detect(),
        pid: 0,
        exe: String::new(),
        uprobes: Vec::new(),
        syscalls: Vec::new(),
    })
}

fn check_kernel() -> Result<(), TraceError> {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(TraceError::KernelFeature {
            feature: "BTF (/sys/kernel/btf/vmlinux)",
            hint: "a kernel built with CONFIG_DEBUG_INFO_BTF=y, Linux 5.8 or newer",
        });
    }
    Ok(())
}

impl Loaded {
    /// Loads the uprobe programs of the plan's sites in `groups` and attaches them to `pid`
    /// only, where the catalogue places them.
    pub fn attach(
        &mut self,
        inspection: &Inspection,
        pid: u32,
        image: &target::Image,
        groups: &[ProbeGroup],
    ) -> Result<(), TraceError> {
        self.pid = pid;
        self.exe = image.attach_path();
        // Opt-in groups first: the report lists the probes' hits in this order.
        let (opt_in, default): (Vec<&ProbeSite>, Vec<&ProbeSite>) = inspection
            .probes
            .iter()
            .filter(|site| groups.contains(&site.group()))
            .partition(|site| site.group().opt_in().is_some());
        for site in opt_in.into_iter().chain(default) {
            self.uprobes.extend(Uprobe::of(site));
        }
        for i in 0..self.uprobes.len() {
            let program = self.program(i)?;
            program.load().map_err(|e| self.attach_error(i, e))?;
        }
        for &group in groups {
            self.set_group(group, true)?;
        }
        Ok(())
    }

    fn program(&mut self, i: usize) -> Result<&mut UProbe, TraceError> {
        let name = self.mode.program(self.uprobes[i].probe);
        let (symbol, pid) = (self.uprobes[i].symbol, self.pid);
        let program = self
            .ebpf
            .program_mut(&name)
            .ok_or_else(|| TraceError::Missing(format!("program {name}")))?;
        program.try_into().map_err(|source| TraceError::Attach {
            symbol: symbol.to_owned(),
            pid,
            source,
        })
    }

    fn attach_error(&self, i: usize, source: aya::programs::ProgramError) -> TraceError {
        TraceError::Attach {
            symbol: self.uprobes[i].symbol.to_owned(),
            pid: self.pid,
            source,
        }
    }

    /// Attaches or detaches every probe of `group`. Detaching drops the kernel's uprobes: the
    /// target runs as if never traced until they return.
    pub fn set_group(&mut self, group: ProbeGroup, on: bool) -> Result<(), TraceError> {
        let began = std::time::Instant::now();
        let result = self.switch_group(group, on);
        log::debug!(
            "{group:?} probes {} in {:?}",
            if on { "attached" } else { "detached" },
            began.elapsed()
        );
        result
    }

    fn switch_group(&mut self, group: ProbeGroup, on: bool) -> Result<(), TraceError> {
        let pid = NonZeroU32::new(self.pid).ok_or(TraceError::NoSuchProcess(self.pid))?;
        if on {
            self.forget_open_calls(group);
        }
        for i in 0..self.uprobes.len() {
            if self.uprobes[i].group != group || self.uprobes[i].link.is_some() == on {
                continue;
            }
            // Off before the link goes (it fires until the kernel has dropped it), on before
            // the new link can fire.
            self.set_off(self.uprobes[i].probe, !on);
            let exe = self.exe.clone();
            let offsets = self.uprobes[i].offsets.clone();
            let link = self.uprobes[i].link.take();
            let program = self.program(i)?;
            let result = match link {
                Some(link) => program.take_link(link).map(|link| {
                    // The probe stops firing at once, but unregistering it waits for an RCU
                    // grace period (a third of a second here): finish that off the event loop.
                    std::thread::spawn(move || drop(link));
                    None
                }),
                None => program
                    .attach(
                        offsets
                            .into_iter()
                            .map(UProbeAttachLocation::AbsoluteOffset),
                        &exe,
                        UProbeScope::OneProcess(pid),
                    )
                    .map(Some),
            };
            self.uprobes[i].link = result.map_err(|e| self.attach_error(i, e))?;
        }
        Ok(())
    }

    /// Switches `probe`'s program to return at once (`off`) or to do its work. A failed write
    /// leaves it working: the window then counts a few more events, which is no harm.
    fn set_off(&mut self, probe: ProbeId, off: bool) {
        let Some(map) = self.ebpf.map_mut(maps::PROBES_OFF) else {
            return;
        };
        if let Ok(mut array) = aya::maps::Array::<_, u32>::try_from(map) {
            let _ = array.set(probe as u32, &u32::from(off), 0);
        }
    }

    /// Hits of every probe in `group` so far, summed over CPUs.
    pub fn group_hits(&self, group: ProbeGroup) -> u64 {
        self.uprobes
            .iter()
            .filter(|u| u.group == group)
            .map(|u| self.hits(u.probe))
            .sum()
    }

    /// The memory-mapping system-call tracepoints; the programs filter by `config.target_tgid`.
    /// Without tracefs the trace goes on without them, and the reason is returned.
    pub fn attach_syscalls(&mut self) -> Result<(), String> {
        if !std::path::Path::new("/sys/kernel/tracing/events/syscalls").exists() {
            return Err("memory mappings are not traced: tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs nodev /sys/kernel/tracing)".into());
        }
        for call in SYSCALLS {
            for (program, event) in [
                (call.enter_program, format!("sys_enter_{}", call.call)),
                (call.exit.program(), format!("sys_exit_{}", call.call)),
            ] {
                self.attach_tracepoint(program, "syscalls", &event)
                    .map_err(|e| format!("memory mappings are not traced: {event}: {e}"))?;
            }
            self.syscalls.push((call.exit, call.call));
        }
        Ok(())
    }

    /// The exec tracepoint, which ends the trace when the target replaces its image.
    pub fn attach_exec(&mut self) -> Result<(), String> {
        self.attach_tracepoint(ProbeId::Exec.program(), "sched", "sched_process_exec")
            .map_err(|e| format!("exec is not traced: {e}"))?;
        self.syscalls.push((ProbeId::Exec, "sched_process_exec"));
        Ok(())
    }

    /// Loads `program` and attaches it to the tracepoint `category/event` (never detached: a
    /// tracepoint costs no trap).
    fn attach_tracepoint(
        &mut self,
        program: &str,
        category: &str,
        event: &str,
    ) -> Result<(), String> {
        let tp: &mut TracePoint = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| format!("the eBPF object has no {program}"))?
            .try_into()
            .map_err(|e| super::error_chain(&e))?;
        tp.load().map_err(|e| super::error_chain(&e))?;
        tp.attach(category, event)
            .map_err(|e| super::error_chain(&e))?;
        Ok(())
    }

    /// Detaches every uprobe at once. Each detach waits for an RCU grace period (about a third
    /// of a second here): one after the other they would hold the report back for seconds.
    pub fn detach_all(&mut self) {
        let mut links = Vec::new();
        for i in 0..self.uprobes.len() {
            let Some(link) = self.uprobes[i].link.take() else {
                continue;
            };
            if let Ok(program) = self.program(i)
                && let Ok(link) = program.take_link(link)
            {
                links.push(link);
            }
        }
        let waits: Vec<_> = links
            .into_iter()
            .map(|link| std::thread::spawn(move || drop(link)))
            .collect();
        for wait in waits {
            let _ = wait.join();
        }
    }

    /// Assignments counted per map address so far (the assign probes), summed over CPUs.
    pub fn assigns(&self) -> Vec<(u64, u64)> {
        let Some(map) = self.ebpf.map(maps::ASSIGNS) else {
            return Vec::new();
        };
        let Ok(counts) = aya::maps::PerCpuHashMap::<_, u64, u64>::try_from(map) else {
            return Vec::new();
        };
        counts
            .iter()
            .filter_map(Result::ok)
            .map(|(addr, per_cpu)| (addr, per_cpu.iter().sum()))
            .collect()
    }

    /// Evacuations still open in the kernel: `(map, old array, first, last, calls)`.
    pub fn evacuating(&self) -> Vec<mapleak_common::EvacuatedEvent> {
        let Some(map) = self.ebpf.map(maps::EVACUATING) else {
            return Vec::new();
        };
        let Ok(open) = aya::maps::HashMap::<_, u64, maps::Evacuation>::try_from(map) else {
            return Vec::new();
        };
        open.iter()
            .filter_map(Result::ok)
            .map(|(map, e)| mapleak_common::EvacuatedEvent {
                map,
                old_buckets: e.old_buckets,
                first_ns: e.first_ns,
                last_ns: e.last_ns,
                calls: e.calls,
                ..Default::default()
            })
            .collect()
    }

    /// The ring buffer, moved out so that it can be polled while the programs stay attached.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, TraceError> {
        let map = self
            .ebpf
            .take_map(maps::EVENTS)
            .ok_or_else(|| TraceError::Missing("EVENTS map".into()))?;
        RingBuf::try_from(map).map_err(|e| TraceError::KernelFeature {
            feature: "BPF ring buffers",
            hint: match e {
                aya::maps::MapError::InvalidMapType { .. } => "Linux 5.8 or newer",
                _ => "Linux 5.8 or newer with BPF enabled",
            },
        })
    }

    /// A per-CPU counter summed over CPUs; a failed read counts as zero rather than aborting
    /// a report.
    fn sum(&self, map: &str, index: u32) -> u64 {
        self.ebpf
            .map(map)
            .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok())
            .and_then(|a| a.get(&index, 0).ok())
            .map(|values| values.iter().sum())
            .unwrap_or(0)
    }

    /// A `COUNTERS` slot (`mapleak_common::probe::COUNTER_*`) summed over CPUs.
    pub fn counter(&self, index: u32) -> u64 {
        self.sum(maps::COUNTERS, index)
    }

    pub(super) fn hits(&self, probe: ProbeId) -> u64 {
        self.sum(maps::HITS, probe as u32)
    }

    pub(super) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    pub fn counters(&self) -> KernelCounters {
        let uprobes = self.uprobes.iter().map(|u| (u.probe, u.symbol));
        KernelCounters {
            lost: self.sum(maps::COUNTERS, COUNTER_LOST),
            read_errors: self.sum(maps::COUNTERS, COUNTER_READ_ERRORS),
            hits: uprobes
                .chain(self.syscalls.iter().copied())
                .map(|(probe, symbol)| ProbeHits {
                    symbol: symbol.to_owned(),
                    program: probe.program(),
                    hits: self.hits(probe),
                })
                .collect(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn mode(&self) -> UprobeMode {
        self.mode
    }

    /// Where the attached uprobes sit, for the banner.
    pub fn attached_names(&self) -> Vec<String> {
        self.uprobes
            .iter()
            .filter(|u| u.link.is_some())
            .map(|u| u.label.clone())
            .collect()
    }
}

mod open_calls;

#[cfg(test)]
mod tests;
