//! Child processes that stop with their parent.
//!
//! A command that runs another (the sweep its `scfnet train` stages, `cargo xtask sweep` the
//! sweep) must not leave it running when it is told to stop: job managers and `kill` send
//! SIGTERM to the parent alone, and an orphaned trainer would go on writing into the run folder
//! that the next attempt uses. [`status`] runs a command like [`Command::status`], but while the
//! child runs, SIGTERM, SIGINT and SIGHUP sent to this process are passed on to the child; once
//! the child has ended, this process ends by the same signal (its default action), as it would
//! have without a child. Outside [`status`] the signals keep their usual actions.

use std::io;
use std::process::{Command, ExitStatus};

/// Runs `command` to its end, passing SIGTERM, SIGINT and SIGHUP on to it (see the module's
/// documentation); on other platforms, [`Command::status`].
pub fn status(command: &mut Command) -> io::Result<ExitStatus> {
    #[cfg(unix)]
    {
        unix::status(command)
    }
    #[cfg(not(unix))]
    {
        command.status()
    }
}

#[cfg(unix)]
mod unix {
    use std::io;
    use std::process::{Command, ExitStatus};
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::time::Duration;

    /// The signals passed on to the child.
    const FORWARDED: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

    /// The last forwarded signal received and not yet passed on (0: none).
    static PENDING: AtomicI32 = AtomicI32::new(0);

    extern "C" fn note(signal: libc::c_int) {
        PENDING.store(signal, Ordering::SeqCst);
    }

    /// The handlers in place before [`status`] installed its own; put back when dropped.
    struct Handlers(Vec<(libc::c_int, libc::sigaction)>);

    impl Handlers {
        fn install() -> io::Result<Self> {
            let mut saved = Vec::with_capacity(FORWARDED.len());
            for signal in FORWARDED {
                // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the
                // handler only stores into an atomic, which is async-signal-safe.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = note as extern "C" fn(libc::c_int) as usize;
                    libc::sigemptyset(&mut action.sa_mask);
                    action.sa_flags = libc::SA_RESTART;
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(signal, &action, &mut old) != 0 {
                        let err = io::Error::last_os_error();
                        drop(Handlers(saved));
                        return Err(err);
                    }
                    saved.push((signal, old));
                }
            }
            Ok(Handlers(saved))
        }
    }

    impl Drop for Handlers {
        fn drop(&mut self) {
            for (signal, old) in &self.0 {
                // SAFETY: restores the action saved by `install` for the same signal.
                unsafe {
                    libc::sigaction(*signal, old, std::ptr::null_mut());
                }
            }
        }
    }

    pub(super) fn status(command: &mut Command) -> io::Result<ExitStatus> {
        PENDING.store(0, Ordering::SeqCst);
        let handlers = Handlers::install()?;
        let mut child = command.spawn()?;
        let mut received = 0;
        let status = loop {
            let signal = PENDING.swap(0, Ordering::SeqCst);
            if signal != 0 {
                received = signal;
                // SAFETY: `kill` on our own child's PID, which stays reserved until we wait.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, signal);
                }
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(if received != 0 { 10 } else { 50 }));
        };
        drop(handlers);
        let late = PENDING.swap(0, Ordering::SeqCst);
        let signal = if received != 0 { received } else { late };
        if signal != 0 {
            // The child has ended; end as the signal meant this process to.
            // SAFETY: raising a signal whose default action is restored.
            unsafe {
                libc::raise(signal);
            }
        }
        Ok(status)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_child_runs_to_its_end_and_its_status_is_returned() {
        let ok = status(Command::new("sh").args(["-c", "exit 0"])).unwrap();
        assert!(ok.success());
        let failed = status(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert_eq!(failed.code(), Some(3));
        assert!(status(&mut Command::new("/nonexistent/program")).is_err());
    }
}
