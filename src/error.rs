//! The one error that leaves become-root: what failed, why, the fix where one is known, and
//! the exit status (a contract: DESIGN.md). Reported once, in one format:
//! `become-root: <what>: <why>`, then `hint: <fix>`.
//!
//! This module is at the bottom and depends on nothing of the crate. Each layer has its own
//! error enum (`SubidError`, `MapError`, `UsernsError`, `NetError`, `SessionError`,
//! `ExecError`, ...), defined beside its code with its hint, and converts into [`Error`] with
//! a `From` written there too; mechanisms that fail in one place only build an [`Error`]
//! directly. An error made in another process (the map helper) crosses a pipe as its three
//! strings and becomes the same [`Error`] here.

use std::fmt;

/// become-root itself failed, bad usage included.
pub const EXIT_FAILURE: i32 = 125;
/// COMMAND was found but could not be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// COMMAND was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Everything that makes become-root exit with a status of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    what: String,
    why: String,
    hint: Option<String>,
    status: i32,
    /// A signal ended become-root's own work: see [`Error::interrupted`].
    signal: Option<i32>,
}

impl Error {
    /// `what` failed because `why` (status 125).
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> Error {
        Error {
            what: what.into(),
            why: why.into(),
            hint: None,
            status: EXIT_FAILURE,
            signal: None,
        }
    }

    /// Signal `signo` (SIGTERM, SIGINT, ...) came while become-root set a run up (held
    /// blocked then, to be forwarded to COMMAND later): once what was made is undone,
    /// become-root dies of it, as a program without handlers would, and prints nothing
    /// (status 128+N where it cannot die of it).
    pub fn interrupted(signo: i32) -> Error {
        Error {
            signal: Some(signo),
            ..Error::new("interrupted", format!("signal {signo}")).with_status(128 + signo)
        }
    }

    /// The signal to die of, for an [`Error::interrupted`].
    pub fn signal(&self) -> Option<i32> {
        self.signal
    }

    /// A system call refused `what`.
    pub fn sys(what: impl Into<String>, errno: nix::Error) -> Error {
        Error::new(what, errno.desc())
    }

    /// Bad usage: `usage: <why>`, always with a hint.
    pub fn usage(why: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::new("usage", why).with_hint(hint)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// The hint, if there is one (`None` leaves it as it was).
    pub fn with_hint_maybe(mut self, hint: Option<String>) -> Error {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    pub fn with_status(mut self, status: i32) -> Error {
        self.status = status;
        self
    }

    /// `<what>`: the thing that failed.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// `<why>`.
    pub fn why(&self) -> &str {
        &self.why
    }

    /// `<fix>`, where one is known.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The exit status this error stands for.
    pub fn exit_code(&self) -> i32 {
        self.status
    }

    /// Print the error to stderr in the one format.
    pub fn report(&self) {
        write_stderr(format_args!("{self}"));
    }
}

/// Write to stderr as eprint! does, but never panic: a message that cannot be written (stderr
/// on a full disk, or a file over the file size limit: become-root ignores SIGXFSZ, and the
/// write fails with EFBIG) is lost, and become-root still ends with its own status. eprint!
/// panics there, which in a forked child would unwind into become-root's own code.
pub fn write_stderr(args: fmt::Arguments) {
    use std::io::Write;
    let _ = std::io::stderr().write_fmt(args);
}

/// eprintln!, through [`write_stderr`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::error::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use say;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "become-root: {}: {}", self.what, self.why)?;
        if let Some(hint) = &self.hint {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{EXIT_FAILURE, EXIT_NOT_FOUND, Error};

    #[test]
    fn the_one_format() {
        let e = Error::new("overlay on /x", "Not a directory").with_hint("give a directory");
        assert_eq!(
            e.to_string(),
            "become-root: overlay on /x: Not a directory\nhint: give a directory\n"
        );
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        let e = Error::sys("fork", nix::Error::EAGAIN).with_status(EXIT_NOT_FOUND);
        assert_eq!(e.to_string(), "become-root: fork: Try again\n");
        assert_eq!(e.exit_code(), 127);
        let usage = Error::usage("no such option", "see --help");
        assert_eq!(usage.what(), "usage");
        assert_eq!(usage.hint(), Some("see --help"));
    }
}
