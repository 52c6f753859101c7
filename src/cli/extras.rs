//! The options of issue 25, together (flattened into [`super::Cli`]): `--emulate`, the time
//! namespace (`--time`, `--monotonic`, `--boottime`), `--hostname`, the environment options
//! (`--setenv`, `--unsetenv`, `--clearenv`) and `--device`. Their values go to the layers
//! below as [`Extras`].

use std::ffi::OsString;

use crate::options::{EnvArg, Extras};

/// The options of the run's world beyond its namespaces and mounts.
#[derive(Debug, clap::Args)]
pub struct ExtrasArgs {
    /// Run programs built for ARCH through QEMU's user-mode emulator: a binfmt_misc of the
    /// run's own (Linux 6.7 and later) at /proc/sys/fs/binfmt_misc, with qemu-ARCH-static
    /// (found on PATH, else qemu-ARCH; or named by QEMU_ARCH_STATIC, as QEMU_AARCH64_STATIC)
    /// registered as Debian registers it, with the F flag, so that it works inside --rootfs
    /// and chroots. ARCH: aarch64, arm, riscv64, ppc64le, s390x, mips64el, loongarch64, i386,
    /// x86_64, or Debian's arm64, armhf, armel, ppc64el, loong64, amd64 (repeatable, or
    /// several with ','). Implies --mount
    #[arg(
        long,
        value_name = "ARCH[,ARCH...]",
        value_delimiter = ',',
        help_heading = "Foreign architectures"
    )]
    pub emulate: Vec<String>,

    /// New time namespace: CLOCK_MONOTONIC and CLOCK_BOOTTIME of its own, offset by
    /// --monotonic and --boottime (as unshare -T)
    #[arg(short = 'T', long)]
    pub time: bool,

    /// Add SECONDS (negative too) to CLOCK_MONOTONIC inside; implies --time
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub monotonic: Option<i64>,

    /// Add SECONDS (negative too) to CLOCK_BOOTTIME inside, which uptime and /proc/uptime
    /// show; implies --time
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub boottime: Option<i64>,

    /// Set the host name inside to NAME (at most 64 bytes); implies --uts
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Set VAR to VALUE in COMMAND's environment (repeatable). The environment options apply
    /// in command-line order, to the environment COMMAND would get
    #[arg(
        long,
        value_name = "VAR=VALUE",
        value_parser = clap::value_parser!(OsString),
        help_heading = "Environment of COMMAND"
    )]
    pub setenv: Vec<OsString>,

    /// Remove VAR from COMMAND's environment (repeatable)
    #[arg(
        long,
        value_name = "VAR",
        value_parser = clap::value_parser!(OsString),
        help_heading = "Environment of COMMAND"
    )]
    pub unsetenv: Vec<OsString>,

    /// Remove every variable but PWD from COMMAND's environment, PATH and TERM included (as
    /// bubblewrap's --clearenv); COMMAND is then looked up in /bin and /usr/bin unless a
    /// later --setenv=PATH=... says where
    #[arg(long, help_heading = "Environment of COMMAND")]
    pub clearenv: bool,

    /// Bind the device node PATH at DST (default: PATH; below /dev) inside: with --rootfs,
    /// into its minimal /dev, made there (/dev/fuse for fuse-overlayfs or sshfs, /dev/net/tun
    /// for pasta or a VPN, /dev/dri/renderD128 for a GPU); without, over an existing DST.
    /// Refused for a path that is not a device node (repeatable)
    #[arg(
        long,
        value_name = "PATH[:DST]",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub device: Vec<String>,

    /// The environment options in command-line order (filled by [`super::Cli::parse_args`]).
    #[arg(skip)]
    pub env: Vec<EnvArg>,
}

impl ExtrasArgs {
    /// What the layers below take.
    pub fn into_extras(self) -> Extras {
        Extras {
            emulate: self.emulate,
            time: self.time,
            monotonic: self.monotonic,
            boottime: self.boottime,
            hostname: self.hostname,
            env: self.env,
            devices: self.device,
        }
    }
}

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
