//! `--emulate=ARCH`: which architectures QEMU's user-mode emulator can run here, with which
//! interpreter, and the binfmt_misc registration of each (binfmt-misc.rst's format).
//!
//! The registration is Debian's (qemu-user's binfmt.d files): the ELF header of the
//! architecture (its class, byte order, e_type EXEC or DYN and e_machine) with the same mask,
//! and the flags P (argv\[0\] preserved: QEMU 6.0 and later learn it from AT_FLAGS), O (the
//! binary is passed open, so an execute-only file runs) and F (the interpreter is opened when
//! registered, so it runs inside a new root or a chroot, where its path means nothing). No C:
//! a set-user-ID program inside would lend its ids to the emulator, which the program's user
//! controls through QEMU's environment variables.
//!
//! The interpreter must be statically linked: inside another architecture's tree there is no
//! dynamic loader for it. It is found as the other helpers are (programs.rs): the variable
//! QEMU_ARCH_STATIC (QEMU_AARCH64_STATIC) names it, else qemu-ARCH-static (Debian 12's
//! qemu-user-static) or qemu-ARCH (Debian 13's qemu-user, static itself) on PATH.
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::programs::{Found, Program};

/// An architecture QEMU emulates, and how binfmt_misc recognizes its programs.
#[derive(Debug, PartialEq, Eq)]
pub struct Arch {
    /// QEMU's name (`qemu-aarch64`), and the registration's.
    pub name: &'static str,
    /// Other names for it: Debian's, and what uname(2) says on such a machine.
    pub aliases: &'static [&'static str],
    /// The first bytes of its ELF programs and which bits of them count, escaped as
    /// binfmt_misc takes them.
    magic: &'static str,
    mask: &'static str,
    /// qemu-ARCH-static, the variable that names it, and qemu-ARCH.
    static_program: Program,
    plain: &'static str,
}

macro_rules! arch {
    ($name:literal, [$($alias:literal),*], $magic:literal, $mask:expr, $env:literal) => {
        Arch {
            name: $name,
            aliases: &[$($alias),*],
            magic: $magic,
            mask: $mask,
            static_program: Program {
                name: concat!("qemu-", $name, "-static"),
                env: $env,
                package: "qemu-user-static",
            },
            plain: concat!("qemu-", $name),
        }
    };
}

/// The mask of a little-endian ELF header: OSABI ignored, e_type EXEC or DYN.
const LE: &str =
    r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";

/// The architectures `--emulate` knows, with Debian's registrations (qemu-user, Debian 12 and
/// 13) and, for the two PC ones, QEMU's own (scripts/qemu-binfmt-conf.sh).
pub const ARCHES: &[Arch] = &[
    arch!(
        "aarch64",
        ["arm64"],
        r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
        LE,
        "QEMU_AARCH64_STATIC"
    ),
    arch!(
        "arm",
        ["armhf", "armel", "armv7l", "armv8l"],
        r"\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
        LE,
        "QEMU_ARM_STATIC"
    ),
    arch!(
        "riscv64",
        [],
        r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
        LE,
        "QEMU_RISCV64_STATIC"
    ),
    arch!(
        "ppc64le",
        ["ppc64el"],
        r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00",
        r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
        "QEMU_PPC64LE_STATIC"
    ),
    arch!(
        "s390x",
        [],
        r"\x7f\x45\x4c\x46\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
        r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        "QEMU_S390X_STATIC"
    ),
    arch!(
        "mips64el",
        [],
        r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08\x00",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xfe\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        "QEMU_MIPS64EL_STATIC"
    ),
    arch!(
        "loongarch64",
        ["loong64"],
        r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x02\x01",
        r"\xff\xff\xff\xff\xff\xff\xff\xfc\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        "QEMU_LOONGARCH64_STATIC"
    ),
    arch!(
        "i386",
        ["i686", "i586", "i486"],
        r"\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00",
        r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        "QEMU_I386_STATIC"
    ),
    arch!(
        "x86_64",
        ["amd64"],
        r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
        r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        "QEMU_X86_64_STATIC"
    ),
];

/// The architecture `name` names (QEMU's, Debian's or uname's name).
pub fn arch(name: &str) -> Option<&'static Arch> {
    ARCHES
        .iter()
        .find(|a| a.name == name || a.aliases.contains(&name))
}

/// Every name `--emulate` takes, for messages.
pub fn names() -> String {
    let names: Vec<&str> = ARCHES
        .iter()
        .flat_map(|a| std::iter::once(a.name).chain(a.aliases.iter().copied()))
        .filter(|n| !n.starts_with('i') || *n == "i386")
        .filter(|n| !n.starts_with("armv"))
        .collect();
    names.join(", ")
}

/// This machine's own architecture (uname -m), which it runs without an emulator.
pub fn native() -> Option<&'static Arch> {
    let machine = nix::sys::utsname::uname().ok()?;
    arch(&machine.machine().to_string_lossy())
}

impl Arch {
    /// The variable that names its interpreter, and where to get one.
    pub fn variable(&self) -> &'static str {
        self.static_program.env
    }

    /// Its interpreter: the path in its variable (an error unless executable), else
    /// qemu-ARCH-static or qemu-ARCH on PATH, else None.
    pub fn find(&self) -> Result<Option<Found>, Error> {
        if let Some(found) = self.static_program.find()? {
            return Ok(Some(found));
        }
        Ok(crate::sys::find_on_path(self.plain).map(|path| Found {
            path,
            from_env: None,
        }))
    }

    /// The interpreter a run registers: found, and statically linked.
    pub fn interpreter(&self) -> Result<Found, Error> {
        let what = format!("--emulate={}", self.name);
        let found = self.find()?.ok_or_else(|| {
            Error::new(
                what.clone(),
                format!("no {} or {} on PATH", self.static_program.name, self.plain),
            )
            .with_hint(format!(
                "install QEMU's user-mode emulators (Debian 12: apt install qemu-user-static; \
                 Debian 13: apt install qemu-user), or set {} to a statically linked qemu-{}",
                self.variable(),
                self.name
            ))
        })?;
        match linked_statically(&found.path) {
            Ok(true) => Ok(found),
            Ok(false) => Err(Error::new(
                what,
                format!("{} is linked dynamically", found.describe()),
            )
            .with_hint(format!(
                "inside the foreign tree there is no loader for it: install the static \
                 emulators (Debian 12: qemu-user-static; Debian 13: qemu-user), or set {} to \
                 a static build",
                self.variable()
            ))),
            Err(e) => Err(Error::new(
                what,
                format!("{}: not an ELF program: {e}", found.describe()),
            )),
        }
    }

    /// The line written to binfmt_misc's `register` for `interpreter`; None when its path
    /// holds a character the format cannot carry (':' separates the fields).
    pub fn registration(&self, interpreter: &Path) -> Option<String> {
        let path = interpreter.to_str()?;
        if path.contains([':', '\n']) || !path.starts_with('/') {
            return None;
        }
        Some(format!(
            ":qemu-{}:M::{}:{}:{path}:POF",
            self.name, self.magic, self.mask
        ))
    }

    /// Whether binfmt_misc would hand a file starting with `header` to this architecture's
    /// interpreter.
    pub fn recognizes(&self, header: &[u8]) -> bool {
        let (magic, mask) = (unescape(self.magic), unescape(self.mask));
        header.len() >= magic.len()
            && magic
                .iter()
                .zip(&mask)
                .zip(header)
                .all(|((m, k), h)| h & k == m & k)
    }
}

/// The bytes of a binfmt_misc field: `\xHH` escapes, else the character itself.
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .filter(|_| bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x'))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// Whether the ELF program at `path` is linked statically: it asks for no program
/// interpreter (no PT_INTERP program header).
pub fn linked_statically(path: &Path) -> std::io::Result<bool> {
    let mut bytes = Vec::new();
    // The program headers of a real program are within its first pages.
    std::fs::File::open(path)?
        .take(64 * 1024)
        .read_to_end(&mut bytes)?;
    has_no_interpreter(&bytes).ok_or_else(|| std::io::Error::other("no ELF program header"))
}

/// The pure part of [`linked_statically`]: None when `elf` is no ELF file (or is cut short).
fn has_no_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match elf.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big = match elf.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let int = |at: usize, len: usize| -> Option<u64> {
        let field = elf.get(at..at + len)?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if big { field[i] } else { field[len - 1 - i] };
            value = value << 8 | u64::from(byte);
        }
        Some(value)
    };
    let (phoff, phentsize, phnum) = match wide {
        true => (int(0x20, 8)?, int(0x36, 2)?, int(0x38, 2)?),
        false => (int(0x1c, 4)?, int(0x2a, 2)?, int(0x2c, 2)?),
    };
    for n in 0..phnum {
        let at = usize::try_from(phoff.checked_add(n.checked_mul(phentsize)?)?).ok()?;
        if int(at, 4)? == u64::from(PT_INTERP) {
            return Some(false);
        }
    }
    Some(true)
}

/// --emulate on a kernel before 6.7 (`release`): no binfmt_misc of a user namespace's own.
pub fn kernel_too_old(release: &str) -> Error {
    let since = crate::kernel::BINFMT_IN_USERNS;
    Error::new(
        "--emulate: mounting binfmt_misc in the run's user namespace",
        format!(
            "needs Linux {since} or later (a binfmt_misc of a user namespace's own; this kernel \
             is {release})"
        ),
    )
    .with_hint(
        "run it on Linux 6.7 or later; or have root register QEMU for the whole machine \
         (Debian 12: apt install qemu-user-static binfmt-support; Debian 13: qemu-user-binfmt) \
         and leave out --emulate",
    )
}

/// What `--emulate` registers: each architecture asked for (once), with its interpreter.
/// Names are checked first, then the kernel (6.7 or later), then each interpreter.
pub fn plan(asked: &[String]) -> Result<Vec<(&'static Arch, PathBuf)>, Error> {
    let mut chosen: Vec<(&'static Arch, PathBuf)> = Vec::new();
    for name in asked.iter().map(|n| n.trim()) {
        let Some(arch) = arch(name) else {
            return Err(Error::usage(
                format!("--emulate={name}: not an architecture QEMU emulates here"),
                format!("use one of: {}", names()),
            ));
        };
        if native().is_some_and(|own| std::ptr::eq(own, arch)) {
            return Err(Error::usage(
                format!(
                    "--emulate={name}: this machine runs {} programs itself",
                    arch.name
                ),
                "leave it out: only a foreign architecture needs an emulator",
            ));
        }
        if chosen.iter().any(|(a, _)| std::ptr::eq(*a, arch)) {
            continue;
        }
        // The kernel first: before 6.7 no emulator can help, so a missing one is not what
        // to tell (the VM tier's Debian 12 said "no qemu-aarch64-static" where it has none).
        let (release, version) = crate::kernel::running();
        if version.is_some_and(|v| v < crate::kernel::BINFMT_IN_USERNS) {
            return Err(kernel_too_old(&release));
        }
        let found = arch.interpreter()?;
        if arch.registration(&found.path).is_none() {
            return Err(Error::new(
                format!("--emulate={name}"),
                format!("{}: binfmt_misc cannot register a path with ':' or a newline, or a relative one", found.describe()),
            )
            .with_hint(format!("set {} to another path of it", arch.variable())));
        }
        chosen.push((arch, found.path));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 20 bytes of programs of each kind (their ELF headers up to e_machine).
    const ARM64_STATIC_EXEC: &[u8] =
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
    const ARM64_PIE: &[u8] =
        b"\x7fELF\x02\x01\x01\x03\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\xb7\x00";
    const ARMHF: &[u8] = b"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x28\x00";
    const AMD64: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00";
    const S390X: &[u8] = b"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16";
    const ARM64_OBJECT: &[u8] =
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\xb7\x00";

    #[test]
    fn each_header_is_recognized_by_its_architecture_alone() {
        // (header, the one architecture that takes it, or none)
        let rows: [(&[u8], Option<&str>); 7] = [
            (ARM64_STATIC_EXEC, Some("aarch64")),
            (ARM64_PIE, Some("aarch64")),
            (ARMHF, Some("arm")),
            (AMD64, Some("x86_64")),
            (S390X, Some("s390x")),
            (ARM64_OBJECT, None),
            (b"#!/bin/sh\n", None),
        ];
        for (header, want) in rows {
            let got: Vec<&str> = ARCHES
                .iter()
                .filter(|a| a.recognizes(header))
                .map(|a| a.name)
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{header:x?}");
        }
    }

    #[test]
    fn this_machines_own_programs_are_its_native_architecture() {
        let own = std::fs::read("/proc/self/exe").unwrap();
        let native = native().expect("an architecture of the table");
        let takers: Vec<&str> = ARCHES
            .iter()
            .filter(|a| a.recognizes(&own))
            .map(|a| a.name)
            .collect();
        assert_eq!(takers, [native.name]);
    }

    #[test]
    fn names_and_aliases() {
        let rows = [
            ("arm64", Some("aarch64")),
            ("aarch64", Some("aarch64")),
            ("armhf", Some("arm")),
            ("ppc64el", Some("ppc64le")),
            ("loong64", Some("loongarch64")),
            ("amd64", Some("x86_64")),
            ("sparc", None),
            ("", None),
        ];
        for (name, want) in rows {
            assert_eq!(arch(name).map(|a| a.name), want, "{name}");
        }
        assert!(names().starts_with("aarch64, arm64, arm, armhf, armel, riscv64"));
    }

    #[test]
    fn registration_lines() {
        let aarch64 = arch("aarch64").unwrap();
        assert_eq!(
            aarch64
                .registration(Path::new("/usr/bin/qemu-aarch64-static"))
                .unwrap(),
            format!(
                r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:{LE}:/usr/bin/qemu-aarch64-static:POF"
            )
        );
        for bad in ["/a:b/qemu", "relative/qemu", "/a\nb"] {
            assert_eq!(aarch64.registration(Path::new(bad)), None, "{bad}");
        }
        for arch in ARCHES {
            assert_eq!(
                unescape(arch.magic).len(),
                unescape(arch.mask).len(),
                "{}",
                arch.name
            );
        }
    }

    #[test]
    fn static_and_dynamic_programs() {
        assert_eq!(has_no_interpreter(b"#!/bin/sh"), None);
        assert_eq!(has_no_interpreter(b"\x7fELF\x02\x01"), None);
        // This test program is linked as the crate's builds are (statically, .cargo/config),
        // the shell of the machine dynamically.
        let own = std::fs::read("/proc/self/exe").unwrap();
        let sh = std::fs::read("/bin/sh").unwrap();
        assert_eq!(has_no_interpreter(&sh), Some(false));
        assert!(has_no_interpreter(&own).is_some());
    }
}
