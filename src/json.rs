//! JSON strings, written by hand: the only JSON become-root writes is its own flat objects
//! (--info-fd, --list --json, subid check --json), whose one hard part is escaping.
//!
//! Not serde_json (and, for the UTC times of `--list`, not the time crate): measured side by
//! side, both together add 81 KB (4%) to the release binary and ten crates to the build for
//! these twenty lines and session::record::utc's twenty, and nothing to correctness that the
//! property tests (tests/properties.rs: every string round-trips through a JSON parser) do
//! not already check; start-up of `become-root --map=single true` was 1.02x (median of 400
//! interleaved pairs), within this machine's noise.
#![forbid(unsafe_code)]

use std::fmt::Write;

/// A JSON string literal (RFC 8259): quotes and backslashes escaped, control characters as
/// `\n`, `\t`, ... or `\u00XX`. Everything else, non-ASCII included, is written as is (the
/// input is a `str`, so the output is valid UTF-8).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
