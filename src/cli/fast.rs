//! The command lines read without clap, because they are the most common and must start fast:
//! `become-root [--map=MODE] [--] COMMAND...` and `become-root --join=NAME [--] [COMMAND...]`.
//! Each is checked against clap's reading of the same lines.

use std::ffi::OsString;

use crate::options::MapMode;

/// The plain form `become-root [--map=MODE] [--] [COMMAND [ARG]...]`, with no other option: a
/// new run with every other default, parsed without clap. That is the most common command line
/// (`become-root make install`, `become-root --map=keep-id podman ...`), and building clap's
/// command and matching costs more than half of become-root's own start-up instructions
/// (callgrind, scripts/profile-startup). Any other shape returns `None` and goes through clap;
/// `plain_run_agrees_with_clap` checks that both read every such line the same way.
pub fn plain_run(args: &[OsString]) -> Option<crate::launch::Request> {
    let mut rest = args.get(1..).unwrap_or_default();
    let mut map = MapMode::Auto;
    if let Some(mode) = rest
        .first()
        .and_then(|a| a.to_str()?.strip_prefix("--map="))
    {
        // clap's own reading of a value (exact names, no abbreviation), without its command.
        map = <MapMode as clap::ValueEnum>::from_str(mode, false).ok()?;
        rest = &rest[1..];
    }
    let command = command_words(rest)?;
    Some(crate::launch::Request {
        map,
        command,
        ..Default::default()
    })
}

/// The plain form `become-root --join=NAME [--] [COMMAND [ARG]...]`, with no other option:
/// the words of COMMAND, parsed without clap. Building the whole command-line definition costs
/// a tenth of a join (about 0.1 ms here), and joining is meant to be cheap. Any other shape
/// returns `None` and goes through clap; `plain_join_agrees_with_clap` checks that both read
/// every accepted command line the same way.
pub fn plain_join(args: &[OsString]) -> Option<(String, Vec<OsString>)> {
    let spec = args.get(1)?.to_str()?.strip_prefix("--join=")?;
    if spec.is_empty() {
        return None;
    }
    Some((spec.to_string(), command_words(&args[2..])?))
}

/// The words after the options: `[--] [COMMAND [ARG]...]`, or `None` when the first is another
/// option (a word starting with `-`), which is clap's to read.
fn command_words(rest: &[OsString]) -> Option<Vec<OsString>> {
    match rest.first() {
        None => Some(Vec::new()),
        Some(first) if first == "--" => Some(rest[1..].to_vec()),
        Some(first)
            if std::os::unix::ffi::OsStrExt::as_bytes(first.as_os_str()).starts_with(b"-") =>
        {
            None
        }
        Some(_) => Some(rest.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::{plain_join, plain_run};
    use crate::cli::{Action, Cli};

    #[test]
    fn plain_run_agrees_with_clap() {
        let table: &[(&[&str], bool)] = &[
            (&[], true),
            (&["true"], true),
            (&["make", "-j4", "install", "--keep-going"], true),
            (&["--", "-weird-command", "x"], true),
            (&["--"], true),
            (&["sh", "-c", "--net"], true),
            (&["-n", "true"], false),
            (&["--pid", "true"], false),
            (&["-", "x"], false),
            (&["--help"], false),
            (&["--map=keep-id", "true"], true),
            (&["--map=subids", "--", "-x"], true),
            (&["--map=single"], true),
            (&["--map=full", "make", "--map=single"], true),
            (&["--map=auto", "id"], true),
            (&["--map=keep-id", "--pid", "true"], false),
            (&["--map", "keep-id", "true"], false),
            (&["--map=keep", "true"], false),
            (&["--map=KEEP-ID", "true"], false),
            (&["--map=", "true"], false),
            (&["--map=single", "--map=full", "true"], false),
        ];
        for (words, plain) in table {
            let args: Vec<OsString> = std::iter::once("become-root")
                .chain(words.iter().copied())
                .map(Into::into)
                .collect();
            let fast = plain_run(&args);
            assert_eq!(fast.is_some(), *plain, "{words:?}");
            if let Some(fast) = fast {
                let Action::Run(slow) = Cli::parse_args(args).unwrap().into_action() else {
                    panic!("{words:?}: clap reads no run");
                };
                assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{words:?}");
            }
        }
    }

    #[test]
    fn a_request_by_default_is_clap_reading_no_option() {
        // The defaults are defined once, by the options' types: clap takes them from there
        // (default_value_t), and so does the fast path (Request::default()).
        let Action::Run(slow) = Cli::parse_args(vec!["become-root".into()])
            .unwrap()
            .into_action()
        else {
            panic!("clap reads no run");
        };
        assert_eq!(
            format!("{:?}", crate::launch::Request::default()),
            format!("{slow:?}")
        );
    }

    #[test]
    fn plain_join_agrees_with_clap() {
        let table: &[(&[&str], bool)] = &[
            (&["--join=build"], true),
            (&["--join=build", "make", "-j4", "--keep-going"], true),
            (&["--join=build", "--", "-weird-command", "x"], true),
            (&["--join=build", "--"], true),
            (&["--join=build", "sh", "-c", "--join=other"], true),
            (&["--join=1234", "true"], true),
            (&["--join=a b", "true"], true),
            (&["--join=build", "--chdir=/", "true"], false),
            (&["--join=build", "-q", "true"], false),
            (&["--join=build", "-", "x"], false),
            (&["--join", "build", "true"], false),
            (&["--join=", "true"], false),
            (&["-q", "--join=build", "true"], false),
            (&["--joint=build", "true"], false),
            (&["true"], false),
            (&[], false),
        ];
        for (words, plain) in table {
            let args: Vec<std::ffi::OsString> = std::iter::once("become-root")
                .chain(words.iter().copied())
                .map(Into::into)
                .collect();
            let fast = plain_join(&args);
            assert_eq!(fast.is_some(), *plain, "{words:?}");
            if let Some((spec, command)) = fast {
                let cli = Cli::parse_args(args.clone()).expect("clap accepts it too");
                assert_eq!(cli.join.as_deref(), Some(spec.as_str()), "{words:?}");
                assert_eq!(cli.run.command, command, "{words:?}");
                // Nothing else was given: every other option has its default.
                let default = Cli::parse_args(vec!["become-root".into()]).unwrap();
                assert_eq!(
                    format!(
                        "{:?}",
                        Cli {
                            join: None,
                            run: crate::launch::Request {
                                command: Vec::new(),
                                ..cli.run
                            },
                            ..cli
                        }
                    ),
                    format!("{default:?}"),
                    "{words:?}"
                );
            }
        }
    }
}
