//! The environment options (`--setenv`, `--unsetenv`, `--clearenv`, defined with the other
//! options of the run's world in [`crate::options::Extras`]) in command-line order, as
//! bubblewrap applies them: clap keeps each option's values apart, and their indices say the
//! order.

use std::ffi::OsString;

use crate::options::EnvArg;

/// The environment options of `matches` in command-line order (read before the values are
/// taken out of the matches).
pub(super) fn env_in_order(matches: &clap::ArgMatches) -> Vec<EnvArg> {
    let mut ordered: Vec<(usize, EnvArg)> = Vec::new();
    for (id, make) in [
        ("setenv", EnvArg::Set as fn(OsString) -> EnvArg),
        ("unsetenv", EnvArg::Unset),
    ] {
        if let (Some(indices), Some(values)) =
            (matches.indices_of(id), matches.get_many::<OsString>(id))
        {
            ordered.extend(indices.zip(values.cloned().map(make)));
        }
    }
    if matches.get_flag("clearenv")
        && let Some(index) = matches.index_of("clearenv")
    {
        ordered.push((index, EnvArg::Clear));
    }
    ordered.sort_by_key(|(index, _)| *index);
    ordered.into_iter().map(|(_, arg)| arg).collect()
}

#[cfg(test)]
mod tests {
    use crate::cli::{Action, Cli};
    use crate::options::EnvArg;

    fn extras(words: &[&str]) -> crate::options::Extras {
        let args = std::iter::once("become-root")
            .chain(words.iter().copied())
            .map(Into::into)
            .collect();
        match Cli::parse_args(args).unwrap().into_action() {
            Action::Run(request) => request.extras,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn environment_options_keep_their_order() {
        let got = extras(&[
            "--setenv=A=1",
            "--clearenv",
            "--unsetenv=B",
            "--setenv=C=2",
            "true",
        ]);
        assert_eq!(
            got.env,
            vec![
                EnvArg::Set("A=1".into()),
                EnvArg::Clear,
                EnvArg::Unset("B".into()),
                EnvArg::Set("C=2".into()),
            ]
        );
        assert!(extras(&["true"]).env.is_empty());
    }

    #[test]
    fn emulate_takes_lists_and_offsets_take_negative_numbers() {
        let got = extras(&["--emulate=arm64,riscv64", "--emulate", "armhf", "true"]);
        assert_eq!(got.emulate, ["arm64", "riscv64", "armhf"]);
        let got = extras(&["--monotonic", "-5", "--boottime=86400", "true"]);
        assert_eq!((got.monotonic, got.boottime), (Some(-5), Some(86400)));
        assert!(extras(&["-T", "true"]).time);
    }
}
