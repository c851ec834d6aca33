//! The signals that end a trace with its report. `main` holds them (blocked, so they wait) from
//! its first instruction, and they stay held: a trace looks for one just before it attaches
//! (then nothing is attached and mapleak says so in one sentence) and afterwards reads them from
//! a signalfd, which also says who sent each one (a program started by `mapleak run` already
//! has the terminal's Ctrl-C; a `kill` aimed at mapleak alone is passed on to it).

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use tokio::io::unix::AsyncFd;

/// Blocks SIGINT and SIGTERM: one that arrives stays pending until read or [`release`]d.
pub fn hold() {
    mask(libc::SIG_BLOCK);
}

/// Unblocks SIGINT and SIGTERM; a pending one is delivered now.
pub fn release() {
    mask(libc::SIG_UNBLOCK);
}

/// Whether a SIGINT or SIGTERM arrived while held.
pub fn arrived() -> bool {
    // SAFETY: sigpending fills the set we own; sigismember only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigpending(&mut set) == 0
            && (libc::sigismember(&set, libc::SIGINT) == 1
                || libc::sigismember(&set, libc::SIGTERM) == 1)
    }
}

fn stop_set() -> libc::sigset_t {
    // SAFETY: a sigset_t is plain data that sigemptyset initialises.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

fn mask(how: libc::c_int) {
    let set = stop_set();
    // SAFETY: sigprocmask only reads the set.
    unsafe { libc::sigprocmask(how, &set, std::ptr::null_mut()) };
}

/// One SIGINT or SIGTERM, and where it came from.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub signal: i32,
    /// Sent by the kernel for the terminal (Ctrl-C): the whole foreground process group got it.
    pub from_terminal: bool,
    /// The sending process, for signals sent with kill(2).
    pub sender: u32,
}

/// SIGINT and SIGTERM, read from a signalfd while they stay blocked.
pub struct Stops {
    fd: AsyncFd<OwnedFd>,
}

impl Stops {
    /// Opens the signalfd (inside the async runtime). Signals that arrived while held are the
    /// first ones read.
    pub fn install() -> io::Result<Self> {
        let set = stop_set();
        // SAFETY: signalfd with -1 makes a new descriptor that we own from here on.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by signalfd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            fd: super::register(fd)?,
        })
    }

    /// The next SIGINT or SIGTERM.
    pub async fn next(&mut self) -> io::Result<Arrival> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reads at most one siginfo into the struct we own.
            let n = unsafe {
                libc::read(
                    guard.get_inner().as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n == size as isize {
                return Ok(Arrival {
                    signal: info.ssi_signo as i32,
                    from_terminal: info.ssi_code == libc::SI_KERNEL,
                    sender: info.ssi_pid,
                });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock {
                return Err(err);
            }
            guard.clear_ready();
        }
    }
}
