//! `mapleak run`: the command is started stopped at its first instruction (PTRACE_TRACEME, then
//! the stop every exec makes for its tracer), traced from there, and let go once the probes
//! are in; mapleak then lives as long as it does and exits with its status.

use std::{ffi::OsString, io, os::unix::process::CommandExt, process::Command};

use super::signals::Stops;

/// A command mapleak started and holds stopped until [`Launched::resume`].
pub struct Launched {
    pid: u32,
    /// The command as the user gave it, for messages.
    pub shown: String,
    resumed: bool,
    reaped: Option<i32>,
}

impl Launched {
    /// Starts `command` stopped right after its exec. The error is one sentence.
    pub fn spawn(command: &[OsString]) -> Result<Self, String> {
        let (program, args) = command
            .split_first()
            .ok_or("mapleak run needs a command to run after --")?;
        let shown = program.to_string_lossy().into_owned();
        let mut cmd = Command::new(program);
        cmd.args(args);
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // mapleak holds SIGINT and SIGTERM; the command must get them as usual.
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                // Capabilities granted to mapleak for tracing are not the command's.
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                );
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) => format!(
                "cannot start {shown} stopped for tracing: ptrace is not allowed here (kernel.yama.ptrace_scope = 3?); start it yourself and use mapleak trace --pid"
            ),
            _ => format!("cannot run {shown}: {e}"),
        })?;
        let mut launched = Self {
            pid: child.id(),
            shown,
            resumed: false,
            reaped: None,
        };
        // The exec stops the command with SIGTRAP before its first instruction.
        let status = launched.wait_blocking();
        if !(libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGTRAP) {
            launched.reaped = Some(status);
            return Err(format!(
                "{} ended before its first instruction ({})",
                launched.shown,
                describe(status)
            ));
        }
        launched.follow_to_go()?;
        Ok(launched)
    }

    /// Lets a command that is not Go (`env`, a wrapper script, a launcher) run until the
    /// process executes one, and stops it there.
    fn follow_to_go(&mut self) -> Result<(), String> {
        if is_go(self.pid) {
            return Ok(());
        }
        super::say(&format!(
            "{} is not a Go program: it runs untraced until it executes one",
            self.exe()
        ));
        // SAFETY: ptrace requests on our own stopped tracee.
        unsafe {
            libc::ptrace(
                libc::PTRACE_SETOPTIONS,
                self.pid as libc::pid_t,
                0,
                libc::PTRACE_O_TRACEEXEC,
            );
        }
        let mut signal = 0;
        loop {
            // SAFETY: as above; `signal` is the one the stop intercepted, delivered now.
            unsafe { libc::ptrace(libc::PTRACE_CONT, self.pid as libc::pid_t, 0, signal) };
            let status = self.wait_blocking();
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                self.reaped = Some(status);
                return Err(format!(
                    "{} ended ({}) without executing a Go program: nothing was traced",
                    self.shown,
                    describe(status)
                ));
            }
            let exec_event = status >> 8 == (libc::SIGTRAP | (libc::PTRACE_EVENT_EXEC << 8));
            if exec_event && is_go(self.pid) {
                return Ok(());
            }
            signal = if exec_event {
                0
            } else {
                libc::WSTOPSIG(status)
            };
        }
    }

    fn exe(&self) -> String {
        std::fs::read_link(super::target::exe_path(self.pid))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| self.shown.clone())
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the command run: mapleak stops being its tracer.
    pub fn resume(&mut self) -> io::Result<()> {
        // SAFETY: PTRACE_DETACH of our own stopped tracee, with no signal.
        let r = unsafe { libc::ptrace(libc::PTRACE_DETACH, self.pid as libc::pid_t, 0, 0) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        self.resumed = true;
        Ok(())
    }

    /// The most resident memory the command had, once it has exited (from its exit status,
    /// which stays unreaped): what a trace shorter than one interval could not read itself.
    pub fn peak_rss(&self) -> Option<u64> {
        if self.reaped.is_some() {
            return None;
        }
        // SAFETY: waitid with WNOWAIT fills the siginfo and rusage we own and leaves the child
        // to be reaped by `wait`; the raw call is the one that reports rusage.
        let (r, usage) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let mut usage: libc::rusage = std::mem::zeroed();
            let r = libc::syscall(
                libc::SYS_waitid,
                libc::P_PID,
                self.pid,
                &mut info as *mut libc::siginfo_t,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                &mut usage as *mut libc::rusage,
            );
            (r, usage)
        };
        // ru_maxrss is in KiB; 0 when the child had not exited.
        (r == 0 && usage.ru_maxrss > 0).then(|| usage.ru_maxrss as u64 * 1024)
    }

    /// Passes a signal on to the command.
    pub fn signal(&self, signal: i32) {
        if self.reaped.is_none() {
            // SAFETY: kill(2) on our own child, not yet reaped, so its pid is still its own.
            unsafe { libc::kill(self.pid as libc::pid_t, signal) };
        }
    }

    fn wait_blocking(&mut self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: waitpid on our own child, into a local.
            let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, 0) };
            if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return status;
            }
        }
    }

    /// Waits for the command to exit, passing on the signals sent to mapleak alone (the
    /// terminal's already reached it), and returns its exit status as a shell shows it.
    pub async fn wait(&mut self, stops: &mut Stops) -> u8 {
        if let Some(status) = self.reaped {
            return exit_code(status);
        }
        let exited = super::target::pidfd(self.pid).and_then(super::register);
        // Without a pidfd, waitpid alone: nothing is passed on.
        if let Ok(exited) = &exited {
            loop {
                tokio::select! {
                    _ = exited.readable() => break,
                    arrival = stops.next() => match arrival {
                        Ok(a) => self.pass_on(a),
                        Err(_) => break,
                    },
                }
            }
        }
        let status = self.wait_blocking();
        self.reaped = Some(status);
        exit_code(status)
    }

    /// What mapleak does with a SIGINT or SIGTERM while the command runs: the terminal's went
    /// to the command as well, one the command sent is its own business, any other is its.
    pub fn pass_on(&self, arrival: super::signals::Arrival) {
        if !arrival.from_terminal && arrival.sender != self.pid {
            self.signal(arrival.signal);
        }
    }
}

impl Drop for Launched {
    /// A command never resumed (the trace could not start) does not run untraced: it is
    /// killed where it stopped.
    fn drop(&mut self) {
        if !self.resumed && self.reaped.is_none() {
            self.signal(libc::SIGKILL);
            let status = self.wait_blocking();
            self.reaped = Some(status);
        }
    }
}

/// Whether the program `pid` runs is one for the trace to inspect: anything but a file that is
/// not ELF or not Go (a Go binary mapleak cannot trace is still where `run` stops, and says why).
fn is_go(pid: u32) -> bool {
    use crate::inspect::{InspectError, inspect_file};
    !matches!(
        inspect_file(&super::target::exe_path(pid)),
        Err(InspectError::NotGo(_) | InspectError::NotElf(_))
    )
}

/// The shell's convention: the exit code, or 128 + the signal that killed it.
fn exit_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status)) as u8
    } else {
        1
    }
}

fn describe(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}
