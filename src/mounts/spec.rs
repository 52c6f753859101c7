//! The filesystem options as given (`--bind=SRC[:DST]`, `--overlay=LOWER[,LOWER...]:TARGET[:UPPER]`,
//! ...), parsed: pure. `\:`, `\,` and `\\` escape those characters in paths.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::options::FsArg;

/// A filesystem option, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsSpec {
    Bind {
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
    },
    Tmpfs {
        dir: PathBuf,
    },
    Overlay {
        lowers: Vec<PathBuf>,
        target: PathBuf,
        upper: Option<PathBuf>,
    },
}

impl FsSpec {
    /// Where the option mounts (DST, DIR or TARGET), as given.
    pub fn target(&self) -> &Path {
        match self {
            FsSpec::Bind { dst, .. } => dst,
            FsSpec::Tmpfs { dir } => dir,
            FsSpec::Overlay { target, .. } => target,
        }
    }
}

/// Split `text` on unescaped `sep`, keeping escapes (`\` before any character) in the
/// fields, so that they can be split again on another separator.
pub(super) fn split_raw(text: &str, sep: char) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one");
        match c {
            '\\' => {
                field.push('\\');
                field.extend(chars.next());
            }
            c if c == sep => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
}

/// Remove escapes: `\x` is `x`.
pub(super) fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Split `text` on unescaped `sep` into unescaped fields.
pub fn split_escaped(text: &str, sep: char) -> Vec<String> {
    split_raw(text, sep).iter().map(|f| unescape(f)).collect()
}

/// Parse one filesystem option.
pub fn parse(arg: &FsArg) -> Result<FsSpec, Error> {
    let bad = |option: &str, value: &str, why: &str| {
        Error::usage(
            format!("--{option}={value}: {why}"),
            "see 'become-root --help' (Filesystem)",
        )
    };
    let path = |p: &str| PathBuf::from(p);
    let (option, value) = match arg {
        FsArg::Bind(v) => ("bind", v),
        FsArg::RoBind(v) => ("ro-bind", v),
        FsArg::Tmpfs(v) => ("tmpfs", v),
        FsArg::CopyUp(v) => ("copy-up", v),
        FsArg::Overlay(v) => ("overlay", v),
    };
    // An odd number of backslashes at the end escapes nothing: a mistake, not a path.
    let trailing = value.bytes().rev().take_while(|&b| b == b'\\').count();
    if trailing % 2 == 1 && matches!(arg, FsArg::Bind(_) | FsArg::RoBind(_) | FsArg::Overlay(_)) {
        return Err(bad(option, value, "ends with a '\\' that escapes nothing"));
    }
    match arg {
        FsArg::Bind(v) | FsArg::RoBind(v) => {
            let option = if matches!(arg, FsArg::Bind(_)) {
                "bind"
            } else {
                "ro-bind"
            };
            let fields = split_escaped(v, ':');
            let (src, dst) = match fields.as_slice() {
                [src] if !src.is_empty() => (src.clone(), src.clone()),
                [src, dst] if !src.is_empty() && !dst.is_empty() => (src.clone(), dst.clone()),
                _ => return Err(bad(option, v, "expected SRC or SRC:DST")),
            };
            Ok(FsSpec::Bind {
                src: path(&src),
                dst: path(&dst),
                readonly: option == "ro-bind",
            })
        }
        FsArg::Tmpfs(v) if v.is_empty() => Err(bad("tmpfs", v, "empty path")),
        FsArg::CopyUp(v) if v.is_empty() => Err(bad("copy-up", v, "empty path")),
        FsArg::Tmpfs(v) => Ok(FsSpec::Tmpfs { dir: path(v) }),
        FsArg::CopyUp(v) => Ok(FsSpec::Overlay {
            lowers: vec![path(v)],
            target: path(v),
            upper: None,
        }),
        FsArg::Overlay(v) => {
            let fields = split_raw(v, ':');
            let (lowers, target, upper) = match fields.as_slice() {
                [lowers, target] => (lowers, target, None),
                [lowers, target, upper] => (lowers, target, Some(upper)),
                _ => {
                    return Err(bad(
                        "overlay",
                        v,
                        "expected LOWER[,LOWER...]:TARGET[:UPPER]",
                    ));
                }
            };
            let lowers: Vec<PathBuf> = split_escaped(lowers, ',').iter().map(|l| path(l)).collect();
            let (target, upper) = (unescape(target), upper.map(|u| unescape(u)));
            if lowers.iter().any(|l| l.as_os_str().is_empty())
                || target.is_empty()
                || upper.as_ref().is_some_and(|u| u.is_empty())
            {
                return Err(bad("overlay", v, "an empty path"));
            }
            Ok(FsSpec::Overlay {
                lowers,
                target: path(&target),
                upper: upper.map(|u| path(&u)),
            })
        }
    }
}

#[cfg(test)]
mod tests {

    use std::path::PathBuf;

    use super::{FsSpec, parse, split_escaped};
    use crate::options::FsArg;

    #[test]
    fn split_escaped_rows() {
        let rows: &[(&str, char, &[&str])] = &[
            ("a:b", ':', &["a", "b"]),
            ("a\\:b:c", ':', &["a:b", "c"]),
            ("a\\\\:b", ':', &["a\\", "b"]),
            ("a,b\\,c", ',', &["a", "b,c"]),
            ("", ':', &[""]),
            ("a:", ':', &["a", ""]),
        ];
        for (text, sep, want) in rows {
            assert_eq!(split_escaped(text, *sep), *want, "{text}");
        }
    }

    // long: a table of (input, expected) rows, one per rule
    #[test]
    fn parse_rows() {
        let p = PathBuf::from;
        let ok: Vec<(FsArg, FsSpec)> = vec![
            (
                FsArg::Bind("/a".into()),
                FsSpec::Bind {
                    src: p("/a"),
                    dst: p("/a"),
                    readonly: false,
                },
            ),
            (
                FsArg::Bind("/a:/b".into()),
                FsSpec::Bind {
                    src: p("/a"),
                    dst: p("/b"),
                    readonly: false,
                },
            ),
            (
                FsArg::RoBind("/a\\:x:/b".into()),
                FsSpec::Bind {
                    src: p("/a:x"),
                    dst: p("/b"),
                    readonly: true,
                },
            ),
            (FsArg::Tmpfs("/t".into()), FsSpec::Tmpfs { dir: p("/t") }),
            (
                FsArg::CopyUp("/etc".into()),
                FsSpec::Overlay {
                    lowers: vec![p("/etc")],
                    target: p("/etc"),
                    upper: None,
                },
            ),
            (
                FsArg::Overlay("/l:/t".into()),
                FsSpec::Overlay {
                    lowers: vec![p("/l")],
                    target: p("/t"),
                    upper: None,
                },
            ),
            (
                FsArg::Overlay("/l1,/l2:/t:/u".into()),
                FsSpec::Overlay {
                    lowers: vec![p("/l1"), p("/l2")],
                    target: p("/t"),
                    upper: Some(p("/u")),
                },
            ),
            (
                FsArg::Overlay("/a\\,b:/t".into()),
                FsSpec::Overlay {
                    lowers: vec![p("/a,b")],
                    target: p("/t"),
                    upper: None,
                },
            ),
        ];
        for (arg, want) in ok {
            assert_eq!(parse(&arg).unwrap(), want, "{arg:?}");
        }
        let bad = [
            FsArg::Bind(":/b".into()),
            FsArg::Bind("/a:".into()),
            FsArg::Bind("/a:/b:/c".into()),
            FsArg::Tmpfs("".into()),
            FsArg::CopyUp("".into()),
            FsArg::Overlay("/l".into()),
            FsArg::Overlay("/l:/t:/u:/x".into()),
            FsArg::Overlay(",/l:/t".into()),
            FsArg::Bind("/a\\".into()),
            FsArg::Overlay("/l:/t:/u\\".into()),
            FsArg::Overlay("/l::/u".into()),
        ];
        for arg in bad {
            let err = parse(&arg).expect_err(&format!("{arg:?}"));
            assert_eq!(err.exit_code(), 125);
            // The message names the option given (an empty --copy-up is not a --tmpfs).
            let option = match &arg {
                FsArg::Bind(_) => "--bind=",
                FsArg::RoBind(_) => "--ro-bind=",
                FsArg::Tmpfs(_) => "--tmpfs=",
                FsArg::CopyUp(_) => "--copy-up=",
                FsArg::Overlay(_) => "--overlay=",
            };
            assert!(err.why().starts_with(option), "{arg:?}: {}", err.why());
        }
    }
}
