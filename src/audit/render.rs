//! `check`'s reports: the sentence of each finding ([`Finding::message`]), one line of text a
//! finding, or one JSON object for all of them; and the escaping of file bytes for both.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::io;

use super::{Finding, Kind, LOW_LIMIT, Span, Which};
use crate::json::json_string;

/// Text for messages: as is when it is printable UTF-8, else with escapes.
pub fn show_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => Cow::Borrowed(s),
        _ => Cow::Owned(bytes.escape_ascii().to_string()),
    }
}

/// An owner field for a message: [`show_bytes`], cut short past 64 characters (a line of 1024
/// bytes would otherwise fill the screen). `--json` has the whole field.
pub(super) fn show_owner(owner: &[u8]) -> Cow<'_, str> {
    let shown = show_bytes(owner);
    match shown.char_indices().nth(60) {
        Some((cut, _)) if shown.chars().count() > 64 => Cow::Owned(format!("{}...", &shown[..cut])),
        _ => shown,
    }
}

impl Finding<'_> {
    /// The sentence after `[kind]`.
    pub fn message(&self) -> String {
        let owner = self.owner.as_deref().map(show_owner).unwrap_or_default();
        let range = self.range.map(|r| r.to_string()).unwrap_or_default();
        match self.kind {
            Kind::Overlap | Kind::Duplicate => {
                let Some(o) = &self.other else {
                    return String::new();
                };
                let tail = if self.kind == Kind::Overlap {
                    "; each of them can act on files the other creates in a user namespace"
                } else {
                    ", the same account; newuidmap does not mind, but one of them is redundant"
                };
                format!(
                    "range {range} of {owner} overlaps range {} of {} (line {}){tail}",
                    o.range,
                    show_owner(&o.owner),
                    o.line
                )
            }
            Kind::Account => {
                let Some(a) = &self.account else {
                    return String::new();
                };
                let (word, what) = match self.file {
                    Which::Subuid => ("uid", "account"),
                    Which::Subgid => ("gid", "group"),
                };
                let others = match a.more {
                    0 => String::new(),
                    1 => format!(" and the {word} of 1 more {what}"),
                    n => format!(" and the {word}s of {n} more {what}s"),
                };
                format!(
                    "range {range} of {owner} contains {word} {} of {what} {}{others}; its \
                     owner can map these ids and act as them (CVE-2024-56433)",
                    a.id,
                    show_bytes(a.name)
                )
            }
            Kind::LowRange => format!(
                "{owner}: range {range} starts below {LOW_LIMIT}, where accounts and nobody \
                 (65534) live; an account created later may get one of these ids"
            ),
            Kind::MissingOwner => format!(
                "{owner}: no account has this name or uid; keep range {range} allocated and \
                 never reassign it: files created in this owner's namespaces still carry \
                 these ids"
            ),
            Kind::Unreadable => "NUL byte on the last line: newuidmap fails to read this file \
                 and grants no one anything from it"
                .into(),
            Kind::NoFinalNewline => "no newline at the end of the file; newuidmap reads this \
                 line, but a line added with echo >> would be joined to it"
                .into(),
            _ => {
                // A comment has no owner, and padded-owner names it itself.
                let detail = self.detail.as_deref().unwrap_or_default();
                match owner.is_empty() || matches!(self.kind, Kind::Comment | Kind::PaddedOwner) {
                    true => detail.to_string(),
                    false => format!("{owner}: {detail}"),
                }
            }
        }
    }
}

/// How many findings of each severity.
pub fn counts(findings: &[Finding<'_>]) -> [usize; 3] {
    let mut n = [0; 3];
    for f in findings {
        n[f.severity() as usize] += 1;
    }
    n
}

/// One finding as a line of text: `FILE:LINE: SEVERITY [KIND] MESSAGE`.
pub fn render_text(f: &Finding<'_>, path: &str, out: &mut impl io::Write) -> io::Result<()> {
    writeln!(
        out,
        "{path}:{}: {} [{}] {}",
        f.line,
        f.severity().as_str(),
        f.kind.as_str(),
        f.message()
    )
}

/// The paths the report names, for [`render_json`].
pub struct Paths<'a> {
    pub subuid: &'a str,
    pub subgid: &'a str,
    pub passwd: &'a str,
    pub group: &'a str,
}

impl Paths<'_> {
    fn of(&self, which: Which) -> &str {
        match which {
            Which::Subuid => self.subuid,
            Which::Subgid => self.subgid,
        }
    }
}

/// The whole report as one JSON object, one finding per line:
/// `{"files":{...},"findings":[...],"errors":N,"warnings":N,"notes":N}`. Written by hand (no
/// JSON crate is a dependency); strings are escaped by [`json_string`].
pub fn render_json(
    findings: &[Finding<'_>],
    paths: &Paths<'_>,
    out: &mut impl io::Write,
) -> io::Result<()> {
    write!(
        out,
        "{{\"files\":{{\"subuid\":{},\"subgid\":{},\"passwd\":{},\"group\":{}}},\"findings\":[",
        json_string(paths.subuid),
        json_string(paths.subgid),
        json_string(paths.passwd),
        json_string(paths.group)
    )?;
    for (i, f) in findings.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        json_finding(f, paths.of(f.file), out)?;
    }
    if !findings.is_empty() {
        out.write_all(b"\n")?;
    }
    let [errors, warnings, notes] = counts(findings);
    writeln!(
        out,
        "],\"errors\":{errors},\"warnings\":{warnings},\"notes\":{notes}}}"
    )
}

fn json_finding(f: &Finding<'_>, path: &str, out: &mut impl io::Write) -> io::Result<()> {
    let owner = match &f.owner {
        Some(o) => json_string(&json_text(o)),
        None => "null".into(),
    };
    write!(
        out,
        "{{\"severity\":\"{}\",\"kind\":\"{}\",\"file\":{},\"line\":{},\"owner\":{owner},{}",
        f.severity().as_str(),
        f.kind.as_str(),
        json_string(path),
        f.line,
        json_span(f.range)
    )?;
    if let Some(o) = &f.other {
        write!(
            out,
            ",\"other\":{{\"owner\":{},\"line\":{},{}}}",
            json_string(&json_text(&o.owner)),
            o.line,
            json_span(Some(o.range))
        )?;
    }
    if let Some(a) = &f.account {
        write!(
            out,
            ",\"account\":{{\"id\":{},\"name\":{},\"more\":{}}}",
            a.id,
            json_string(&json_text(a.name)),
            a.more
        )?;
    }
    write!(out, ",\"message\":{}}}", json_string(&f.message()))
}

fn json_span(span: Option<Span>) -> String {
    match span {
        Some(s) => format!(
            "\"start\":{},\"end\":{},\"count\":{}",
            s.start,
            s.last(),
            s.count
        ),
        None => "\"start\":null,\"end\":null,\"count\":null".into(),
    }
}

/// Bytes for a JSON string: as they are when UTF-8 (JSON escapes control characters itself),
/// else with `\xNN` escapes, as in the text output.
fn json_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.escape_ascii().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::json::json_string;

    #[test]
    fn json_string_escapes() {
        assert_eq!(
            json_string("a\"b\\c\n\t\u{1}é"),
            "\"a\\\"b\\\\c\\n\\t\\u0001é\""
        );
    }
}
