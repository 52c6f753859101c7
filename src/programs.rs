//! The helper programs become-root starts besides newuidmap and newgidmap (those are in
//! `userns`, with their privilege checks): slirp4netns, pasta and fuse-overlayfs, each found
//! through an environment variable naming its path (`SLIRP4NETNS`, `PASTA`,
//! `FUSE_OVERLAYFS`), as `NEWUIDMAP` names newuidmap's, else on PATH.
//!
//! A variable that is set and not empty is the caller's explicit choice: when it names
//! nothing that can be run, that is an error naming the variable, never a quiet fall back to
//! PATH (the caller would be testing a program that never ran).
#![forbid(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A helper program: its name, the variable that overrides it, its Debian package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    pub env: &'static str,
    pub package: &'static str,
}

pub const SLIRP4NETNS: Program = Program {
    name: "slirp4netns",
    env: "SLIRP4NETNS",
    package: "slirp4netns",
};

pub const PASTA: Program = Program {
    name: "pasta",
    env: "PASTA",
    package: "passt",
};

pub const FUSE_OVERLAYFS: Program = Program {
    name: "fuse-overlayfs",
    env: "FUSE_OVERLAYFS",
    package: "fuse-overlayfs",
};

/// Where a program was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// Named by the program's variable, not found on PATH.
    pub from_env: Option<&'static str>,
}

impl Found {
    /// The path, and where it came from when that was the variable: "/x/pasta (from PASTA)".
    pub fn describe(&self) -> String {
        match self.from_env {
            Some(env) => format!("{} (from {env})", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

/// The program's variable names something that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{env}={value}: {why}")]
pub struct BadVariable {
    pub env: &'static str,
    pub name: &'static str,
    pub value: String,
    pub why: String,
}

impl BadVariable {
    pub fn hint(&self) -> String {
        format!(
            "set {} to the path of an executable {}, or unset it to use the one on PATH",
            self.env, self.name
        )
    }
}

impl From<BadVariable> for crate::error::Error {
    fn from(e: BadVariable) -> crate::error::Error {
        let hint = e.hint();
        crate::error::Error::new(format!("{}={}", e.env, e.value), e.why).with_hint(hint)
    }
}

impl Program {
    /// The program to run: the path in its variable when that is set and not empty (an
    /// error unless it is an executable file), else the first one on PATH, else `None`.
    pub fn find(&self) -> Result<Option<Found>, BadVariable> {
        let Some(value) = std::env::var_os(self.env).filter(|v| !v.is_empty()) else {
            return Ok(crate::sys::find_on_path(self.name).map(|path| Found {
                path,
                from_env: None,
            }));
        };
        let path = PathBuf::from(&value);
        let bad = |why: &str| BadVariable {
            env: self.env,
            name: self.name,
            value: value.to_string_lossy().into_owned(),
            why: why.into(),
        };
        let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => bad("no such file"),
            _ => bad(&e.to_string()),
        })?;
        if !meta.is_file() {
            return Err(bad("not a regular file"));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(bad("not executable"));
        }
        Ok(Some(Found {
            path,
            from_env: Some(self.env),
        }))
    }
}
