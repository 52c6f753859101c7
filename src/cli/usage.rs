//! Usage errors: clap's refusals in become-root's own format.
#![forbid(unsafe_code)]

/// A command line clap refused: its help or version printed (status 0), or the usage error
/// reported in become-root's format (status 125).
pub fn usage_exit(e: &clap::Error, program: &str) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return 0;
    }
    let (why, hint) = clap_usage(e, program);
    let err = crate::error::Error::usage(why, hint);
    err.report();
    err.exit_code()
}

/// clap's error for bad usage, as `(why, hint)` for `<program>: usage: <why>` and `hint:`:
/// the first line without clap's "error: ", the missing arguments it lists on the following
/// lines, and its tip or the possible values as the hint.
pub fn clap_usage(e: &clap::Error, program: &str) -> (String, String) {
    let text = e.render().to_string();
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    let mut why = lines
        .next()
        .unwrap_or("bad usage")
        .trim_start_matches("error: ")
        .to_string();
    // "the following required arguments were not provided:" lists them on the next lines.
    if why.ends_with(':') {
        let mut missing = Vec::new();
        while let Some(line) = lines.next_if(|l| !l.starts_with("Usage:") && !l.contains(": ")) {
            missing.push(line);
        }
        why = format!("{why} {}", missing.join(", "));
    }
    let tip = lines.find_map(|l| {
        l.strip_prefix("tip: ").map(str::to_string).or_else(|| {
            let values = l.strip_prefix("[possible values: ")?.strip_suffix(']')?;
            Some(format!("use one of: {values}"))
        })
    });
    let hint = match tip {
        Some(tip) => format!("{tip}; see '{program} --help'"),
        None => format!("see '{program} --help'"),
    };
    (why, hint)
}
