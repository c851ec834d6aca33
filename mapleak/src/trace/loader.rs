//! Loading the eBPF object, attaching probes at planned offsets, reading kernel counters.

use std::num::NonZeroU32;

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{
        TracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeScope},
    },
};
use mapleak_common::{
    ProbeId,
    probe::{COUNTER_LOST, COUNTER_READ_ERRORS},
};

use super::{TraceError, target};
use crate::{
    inspect::Inspection,
    report::{KernelCounters, ProbeHits},
};

/// The kernel programs, built by build.rs from `mapleak-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mapleak"));

pub struct Loaded {
    ebpf: Ebpf,
    pid: u32,
    attached: Vec<(ProbeId, &'static str)>,
}

/// Loads the object with the target's offsets and a ring buffer of `ring_size` bytes.
pub fn load(config: &mapleak_common::Config, ring_size: u32) -> Result<Loaded, TraceError> {
    check_kernel()?;
    if EBPF_OBJECT.is_empty() {
        return Err(TraceError::Load(
            "this mapleak was built without its eBPF object (AYA_BUILD_SKIP)".into(),
        ));
    }
    let ebpf = EbpfLoader::new()
        .override_global("CONFIG", config, true)
        .map_max_entries("EVENTS", ring_size)
        .load(EBPF_OBJECT)
        .map_err(|e| TraceError::Load(error_chain(&e)))?;
    Ok(Loaded {
        ebpf,
        pid: 0,
        attached: Vec::new(),
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
    /// Attaches every probe of the plan to `pid` only, at its post-prologue offset.
    pub fn attach(&mut self, inspection: &Inspection, pid: u32) -> Result<(), TraceError> {
        let scope =
            UProbeScope::OneProcess(NonZeroU32::new(pid).ok_or(TraceError::NoSuchProcess(pid))?);
        let exe = target::exe_path(pid);
        self.pid = pid;
        for site in &inspection.probes {
            let attach_err = |why: String| TraceError::Attach {
                symbol: site.symbol.to_owned(),
                pid,
                why,
            };
            let program: &mut UProbe = self
                .ebpf
                .program_mut(site.probe.program())
                .ok_or_else(|| attach_err("the eBPF object has no such program".into()))?
                .try_into()
                .map_err(|e| attach_err(error_chain(&e)))?;
            program.load().map_err(|e| attach_err(error_chain(&e)))?;
            program
                .attach(
                    [UProbeAttachLocation::AbsoluteOffset(site.attach_offset)],
                    &exe,
                    scope,
                )
                .map_err(|e| attach_err(error_chain(&e)))?;
            self.attached.push((site.probe, site.symbol));
            if site.probe == ProbeId::StartTheWorld && !site.ret_offsets.is_empty() {
                self.attach_returns(site, &exe, scope)
                    .map_err(|e| attach_err(format!("at its RET instructions: {e}")))?;
            }
        }
        Ok(())
    }

    /// The memory-mapping system-call tracepoints; the programs filter by `config.target_tgid`.
    /// Without tracefs the trace goes on without them, and the reason is returned.
    pub fn attach_syscalls(&mut self) -> Result<(), String> {
        if !std::path::Path::new("/sys/kernel/tracing/events/syscalls").exists() {
            return Err("memory mappings are not traced: tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs nodev /sys/kernel/tracing)".into());
        }
        let calls = [
            (ProbeId::Mmap, "mmap", "mem_enter_mmap"),
            (ProbeId::Munmap, "munmap", "mem_enter_munmap"),
            (ProbeId::Madvise, "madvise", "mem_enter_madvise"),
        ];
        for (probe, call, enter) in calls {
            for (program, event) in [
                (enter, format!("sys_enter_{call}")),
                (probe.program(), format!("sys_exit_{call}")),
            ] {
                let why = |e: &dyn std::error::Error| {
                    format!(
                        "memory mappings are not traced: {event}: {}",
                        error_chain(e)
                    )
                };
                let tp: &mut TracePoint = self
                    .ebpf
                    .program_mut(program)
                    .ok_or_else(|| format!("the eBPF object has no {program}"))?
                    .try_into()
                    .map_err(|e| why(&e))?;
                tp.load().map_err(|e| why(&e))?;
                tp.attach("syscalls", &event).map_err(|e| why(&e))?;
            }
            self.attached.push((probe, call));
        }
        Ok(())
    }

    /// Uprobes on every RET of the function: its results are in the argument registers there.
    fn attach_returns(
        &mut self,
        site: &crate::inspect::ProbeSite,
        exe: &str,
        scope: UProbeScope,
    ) -> Result<(), String> {
        let ret = ProbeId::StartTheWorldReturn;
        let program: &mut UProbe = self
            .ebpf
            .program_mut(ret.program())
            .ok_or("the eBPF object has no such program")?
            .try_into()
            .map_err(|e| error_chain(&e))?;
        program.load().map_err(|e| error_chain(&e))?;
        let points = site
            .ret_offsets
            .iter()
            .map(|r| UProbeAttachLocation::AbsoluteOffset(site.file_offset + r));
        program
            .attach(points, exe, scope)
            .map_err(|e| error_chain(&e))?;
        self.attached.push((ret, site.symbol));
        Ok(())
    }

    /// The ring buffer, moved out so that it can be polled while the programs stay attached.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, TraceError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| TraceError::Load("the eBPF object has no EVENTS map".into()))?;
        RingBuf::try_from(map).map_err(|e| TraceError::KernelFeature {
            feature: "BPF ring buffers",
            hint: match e {
                aya::maps::MapError::InvalidMapType { .. } => "Linux 5.8 or newer",
                _ => "Linux 5.8 or newer with BPF enabled",
            },
        })
    }

    /// Sums the per-CPU counters. Read errors yield zeros rather than aborting a report.
    pub fn counters(&self) -> KernelCounters {
        let sum = |name: &str, index: u32| -> u64 {
            self.ebpf
                .map(name)
                .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok())
                .and_then(|a| a.get(&index, 0).ok())
                .map(|values| values.iter().sum())
                .unwrap_or(0)
        };
        KernelCounters {
            lost: sum("COUNTERS", COUNTER_LOST),
            read_errors: sum("COUNTERS", COUNTER_READ_ERRORS),
            hits: self
                .attached
                .iter()
                .map(|(probe, symbol)| ProbeHits {
                    symbol: (*symbol).to_owned(),
                    hits: sum("HITS", *probe as u32),
                })
                .collect(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// `Display` of an error and its sources on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
