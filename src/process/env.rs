//! The environment options (`--setenv`, `--unsetenv`, `--clearenv`), applied in command-line
//! order to the environment COMMAND would get, as bubblewrap applies its own: `--clearenv`
//! keeps PWD alone, a later `--setenv` adds to what is left. Pure.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::error::Error;
use crate::options::EnvArg;

/// `env` after `ops`, and what they made of PATH: None when they left it alone, else its new
/// value (None: removed), for COMMAND's lookup.
#[allow(clippy::type_complexity)]
pub(super) fn apply(
    mut env: Vec<(OsString, OsString)>,
    ops: &[EnvArg],
) -> Result<(Vec<(OsString, OsString)>, Option<Option<OsString>>), Error> {
    let mut path_changed = false;
    for op in ops {
        match op {
            EnvArg::Set(pair) => {
                let bytes = pair.as_bytes();
                let at = bytes.iter().position(|&b| b == b'=').filter(|&at| at > 0);
                let Some(at) = at else {
                    return Err(Error::usage(
                        format!("--setenv={}: not VAR=VALUE", pair.to_string_lossy()),
                        "name the variable, then '=', then its value (which may be empty)",
                    ));
                };
                let name = OsString::from(std::ffi::OsStr::from_bytes(&bytes[..at]));
                let value = OsString::from(std::ffi::OsStr::from_bytes(&bytes[at + 1..]));
                path_changed |= name == "PATH";
                env.retain(|(k, _)| *k != name);
                env.push((name, value));
            }
            EnvArg::Unset(name) => {
                if name.is_empty() || name.as_bytes().contains(&b'=') {
                    return Err(Error::usage(
                        format!("--unsetenv={}: not a variable name", name.to_string_lossy()),
                        "name the variable alone, without '=' or a value",
                    ));
                }
                path_changed |= name == "PATH";
                env.retain(|(k, _)| k != name);
            }
            EnvArg::Clear => {
                path_changed = true;
                env.retain(|(k, _)| k == "PWD");
            }
        }
    }
    let path = path_changed.then(|| {
        env.iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
    });
    Ok((env, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        text.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    // long: a table of cases, one row each
    #[test]
    fn options_apply_in_order() {
        let base = pairs(&[
            ("PATH", "/usr/bin"),
            ("PWD", "/w"),
            ("TERM", "xterm"),
            ("A", "1"),
        ]);
        let set = |s: &str| EnvArg::Set(s.into());
        let unset = |s: &str| EnvArg::Unset(s.into());
        // (options, environment after them, PATH for the lookup)
        type Row<'a> = (
            Vec<EnvArg>,
            Vec<(&'a str, &'a str)>,
            Option<Option<&'a str>>,
        );
        let rows: Vec<Row> = vec![
            (
                vec![],
                vec![
                    ("PATH", "/usr/bin"),
                    ("PWD", "/w"),
                    ("TERM", "xterm"),
                    ("A", "1"),
                ],
                None,
            ),
            (
                vec![set("A=2")],
                vec![
                    ("PATH", "/usr/bin"),
                    ("PWD", "/w"),
                    ("TERM", "xterm"),
                    ("A", "2"),
                ],
                None,
            ),
            (
                vec![set("B=x=y"), unset("TERM")],
                vec![
                    ("PATH", "/usr/bin"),
                    ("PWD", "/w"),
                    ("A", "1"),
                    ("B", "x=y"),
                ],
                None,
            ),
            (
                vec![set("E=")],
                vec![
                    ("PATH", "/usr/bin"),
                    ("PWD", "/w"),
                    ("TERM", "xterm"),
                    ("A", "1"),
                    ("E", ""),
                ],
                None,
            ),
            (vec![EnvArg::Clear], vec![("PWD", "/w")], Some(None)),
            (
                vec![set("B=1"), EnvArg::Clear, set("C=2")],
                vec![("PWD", "/w"), ("C", "2")],
                Some(None),
            ),
            (
                vec![EnvArg::Clear, set("PATH=/opt/bin")],
                vec![("PWD", "/w"), ("PATH", "/opt/bin")],
                Some(Some("/opt/bin")),
            ),
            (
                vec![unset("PATH")],
                vec![("PWD", "/w"), ("TERM", "xterm"), ("A", "1")],
                Some(None),
            ),
            (
                vec![unset("NOT_THERE")],
                vec![
                    ("PATH", "/usr/bin"),
                    ("PWD", "/w"),
                    ("TERM", "xterm"),
                    ("A", "1"),
                ],
                None,
            ),
        ];
        for (ops, want, path) in rows {
            let (got, got_path) = apply(base.clone(), &ops).unwrap();
            assert_eq!(got, pairs(&want), "{ops:?}");
            assert_eq!(got_path, path.map(|p| p.map(OsString::from)), "{ops:?}");
        }
    }

    #[test]
    fn malformed_options_are_usage_errors() {
        for op in [
            EnvArg::Set("NOEQUALS".into()),
            EnvArg::Set("=value".into()),
            EnvArg::Unset("".into()),
            EnvArg::Unset("A=1".into()),
        ] {
            let err = apply(Vec::new(), std::slice::from_ref(&op)).unwrap_err();
            assert_eq!(err.exit_code(), 125, "{op:?}");
        }
    }
}
