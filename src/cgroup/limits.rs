//! The limits: podman's spellings parsed, and their cgroup v2 files and systemd properties.

use crate::error::Error;

/// The limits asked for, with podman's spellings, as the values cgroup v2 takes (bytes;
/// u64::MAX for no limit; CPUs' worth of time per period): the options' one definition,
/// which the command line flattens.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct Limits {
    /// Memory limit (memory.max): bytes, or with a unit b, k, m, g (64M, 1.5g), as podman.
    /// Implies --cgroup; a COMMAND the limit kills ends with status 137
    #[arg(long, value_name = "SIZE", value_parser = crate::cgroup::parse_size, help_heading = "Cgroups and system images")]
    pub memory: Option<u64>,

    /// Memory and swap together (podman's meaning; -1: no limit on swap). Needs --memory;
    /// without it swap is limited to as much as --memory
    #[arg(long, value_name = "SIZE", value_parser = crate::cgroup::parse_memory_swap, allow_hyphen_values = true, help_heading = "Cgroups and system images")]
    pub memory_swap: Option<u64>,

    /// CPU time limit in CPUs, fractions allowed (cpu.max; 0.5 is half of one CPU). Implies
    /// --cgroup
    #[arg(long, value_name = "N", value_parser = crate::cgroup::parse_cpus, help_heading = "Cgroups and system images")]
    pub cpus: Option<f64>,

    /// Most tasks (processes and threads) at once (pids.max; -1: no limit). Implies --cgroup
    #[arg(long = "pids-limit", id = "pids_limit", value_name = "N", value_parser = crate::cgroup::parse_pids, allow_hyphen_values = true, help_heading = "Cgroups and system images")]
    pub pids: Option<u64>,
}

/// The period of cpu.max, as podman and systemd use it.
const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.memory_swap.is_some()
            || self.cpus.is_some()
            || self.pids.is_some()
    }

    /// Check the combination: --memory-swap counts memory too, so it needs --memory and may
    /// not be less (podman's rules).
    pub fn check(&self) -> Result<(), Error> {
        match (self.memory, self.memory_swap) {
            (None, Some(_)) => Err(Error::usage(
                "--memory-swap without --memory",
                "--memory-swap is memory and swap together: give --memory too",
            )),
            (Some(memory), Some(swap)) if swap < memory => Err(Error::usage(
                "--memory-swap is less than --memory",
                "--memory-swap is memory and swap together: give at least --memory, or -1 for \
                 no limit on swap",
            )),
            _ => Ok(()),
        }
    }

    /// The controllers the limits need, in the order the kernel lists them.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut needed = Vec::new();
        if self.cpus.is_some() {
            needed.push("cpu");
        }
        if self.memory.is_some() {
            needed.push("memory");
        }
        if self.pids.is_some() {
            needed.push("pids");
        }
        needed
    }

    /// The interface files and what to write to them.
    pub(super) fn files(&self) -> Vec<(&'static str, String)> {
        let max = |v: u64| match v {
            u64::MAX => "max".to_string(),
            v => v.to_string(),
        };
        let mut files = Vec::new();
        if let Some(memory) = self.memory {
            files.push(("memory.max", memory.to_string()));
            files.push(("memory.swap.max", max(self.swap())));
        }
        if let Some(cpus) = self.cpus {
            files.push(("cpu.max", format!("{} {CPU_PERIOD_US}", cpu_quota_us(cpus))));
        }
        if let Some(pids) = self.pids {
            files.push(("pids.max", max(pids)));
        }
        files
    }

    /// Swap alone: --memory-swap less --memory; as much as --memory when only that is given
    /// (podman's default).
    fn swap(&self) -> u64 {
        match (self.memory, self.memory_swap) {
            (_, Some(u64::MAX)) => u64::MAX,
            (Some(memory), Some(total)) => total - memory,
            (Some(memory), None) => memory,
            (None, _) => u64::MAX,
        }
    }

    /// The same limits as properties of a systemd unit (name, D-Bus signature, value).
    pub(super) fn properties(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut props = Vec::new();
        if let Some(memory) = self.memory {
            props.push(("MemoryMax", "t", memory.to_string()));
            props.push(("MemorySwapMax", "t", self.swap().to_string()));
        }
        if let Some(cpus) = self.cpus {
            let per_sec = cpu_quota_us(cpus) * (1_000_000 / CPU_PERIOD_US);
            props.push(("CPUQuotaPerSecUSec", "t", per_sec.to_string()));
        }
        if let Some(pids) = self.pids {
            props.push(("TasksMax", "t", pids.to_string()));
        }
        props
    }

    /// As the user wrote them, for messages and --info-fd: "memory 64M, pids 20".
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let size = |v: u64| match v {
            u64::MAX => "max".to_string(),
            v => v.to_string(),
        };
        let mut out = Vec::new();
        if let Some(memory) = self.memory {
            out.push(("memory", size(memory)));
        }
        if let Some(swap) = self.memory_swap {
            out.push(("memory_swap", size(swap)));
        }
        if let Some(cpus) = self.cpus {
            out.push(("cpus", format!("{cpus}")));
        }
        if let Some(pids) = self.pids {
            out.push(("pids", size(pids)));
        }
        out
    }
}

/// A size as podman would take it back: 64M for 67108864, bytes when no unit divides it.
pub fn size_text(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn cpu_quota_us(cpus: f64) -> u64 {
    // The kernel's least quota is 1 ms.
    ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000)
}

/// `--memory` and `--memory-swap` values: a number of bytes with an optional unit b, k, m, g
/// or t (1024-based, any case, a trailing b allowed: 64M, 64mb, 1.5g), as podman reads them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let shift = match unit.strip_suffix('b').unwrap_or(unit) {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "{text:?}: not a size (a number and b, k, m, g or t)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: not a size (a number and b, k, m, g or t)"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("{text:?}: out of range"));
    }
    Ok(bytes as u64)
}

/// `--memory-swap`: a size, or -1 for no limit on swap.
pub fn parse_memory_swap(text: &str) -> Result<u64, String> {
    match text.trim() {
        "-1" => Ok(u64::MAX),
        _ => parse_size(text),
    }
}

/// `--cpus`: a positive number, fractions allowed (0.5 is half of one CPU's time).
pub fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(cpus) if cpus > 0.0 && cpus <= 1_000_000.0 => Ok(cpus),
        _ => Err(format!(
            "{text:?}: not a positive number of CPUs (0.5, 2, ...)"
        )),
    }
}

/// `--pids-limit`: a positive number of tasks, or -1 for no limit.
pub fn parse_pids(text: &str) -> Result<u64, String> {
    match text.trim() {
        "-1" => Ok(u64::MAX),
        t => match t.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{text:?}: not a positive number of tasks, or -1")),
        },
    }
}

#[cfg(test)]
mod tests {

    use super::{Limits, parse_cpus, parse_memory_swap, parse_pids, parse_size, size_text};

    #[test]
    fn sizes_as_podman_reads_them() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("100b"), Ok(100));
        assert!(parse_size("64x").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("-5m").is_err());
        assert_eq!(parse_memory_swap("-1"), Ok(u64::MAX));
        assert_eq!(size_text(64 << 20), "64M");
        assert_eq!(size_text(3 << 29), "1536M");
        assert_eq!(size_text(1000), "1000");
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("two").is_err());
        assert_eq!(parse_pids("20"), Ok(20));
        assert_eq!(parse_pids("-1"), Ok(u64::MAX));
        assert!(parse_pids("0").is_err());
    }

    #[test]
    fn limits_as_interface_files_and_unit_properties() {
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: None,
            cpus: Some(0.5),
            pids: Some(20),
        };
        assert_eq!(
            limits.files(),
            vec![
                ("memory.max", "67108864".to_string()),
                ("memory.swap.max", "67108864".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("pids.max", "20".to_string()),
            ]
        );
        assert_eq!(
            limits.properties(),
            vec![
                ("MemoryMax", "t", "67108864".to_string()),
                ("MemorySwapMax", "t", "67108864".to_string()),
                ("CPUQuotaPerSecUSec", "t", "500000".to_string()),
                ("TasksMax", "t", "20".to_string()),
            ]
        );
        assert_eq!(limits.controllers(), ["cpu", "memory", "pids"]);
        let swap = Limits {
            memory: Some(100),
            memory_swap: Some(300),
            ..Limits::default()
        };
        assert_eq!(swap.files()[1], ("memory.swap.max", "200".to_string()));
        let unlimited = Limits {
            memory_swap: Some(u64::MAX),
            ..swap.clone()
        };
        assert_eq!(unlimited.files()[1], ("memory.swap.max", "max".to_string()));
        assert!(swap.check().is_ok());
        let less = Limits {
            memory_swap: Some(50),
            ..swap
        };
        assert!(less.check().is_err());
        let alone = Limits {
            memory_swap: Some(50),
            ..Limits::default()
        };
        assert!(alone.check().is_err());
    }
}
