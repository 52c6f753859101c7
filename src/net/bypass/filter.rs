//! The seccomp filter `--net=bypass` installs before COMMAND: which syscalls become-root is
//! told about. Pure: the classic BPF program as data.
//!
//! Told about (SECCOMP_RET_USER_NOTIF): connect(2), listen(2), sendmsg(2), sendmmsg(2), and
//! sendto(2) when it names a destination (its fifth argument is not NULL: send(2) and write(2)
//! on a connected socket are never stopped, which is what keeps the data path at the host's
//! speed). io_uring fails with ENOSYS: its operations (IORING_OP_CONNECT, _SENDMSG) would
//! pass no filter. Syscalls of another ABI (i386, x32) are let through: a 32-bit program's
//! sockets stay the namespace's, with the helper's network.
#![forbid(unsafe_code)]

use nix::libc;

/// AUDIT_ARCH_* of this build's own ABI (linux/audit.h), the `arch` of its seccomp_data.
#[cfg(target_arch = "x86_64")]
pub const NATIVE_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
pub const NATIVE_ARCH: u32 = 0xc000_00b7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub const NATIVE_ARCH: u32 = 0;

/// Whether this build knows its architecture's seccomp ABI.
pub const SUPPORTED: bool = NATIVE_ARCH != 0;

/// x86_64's x32 syscalls carry this bit in their number.
const X32_BIT: u32 = 0x4000_0000;

/// The syscalls become-root decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Connect,
    Listen,
    SendTo,
    SendMsg,
    SendMmsg,
}

impl Call {
    pub fn of(nr: i32) -> Option<Call> {
        let nr = i64::from(nr);
        Some(match nr {
            _ if nr == libc::SYS_connect => Call::Connect,
            _ if nr == libc::SYS_listen => Call::Listen,
            _ if nr == libc::SYS_sendto => Call::SendTo,
            _ if nr == libc::SYS_sendmsg => Call::SendMsg,
            _ if nr == libc::SYS_sendmmsg => Call::SendMmsg,
            _ => return None,
        })
    }
}

// Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ERRNO: u32 = 0x0005_0000;

// Offsets in struct seccomp_data: nr, arch, then args[6] of 8 bytes from 16 (the low half
// first on a little-endian machine).
const NR: u32 = 0;
const ARCH: u32 = 4;
fn arg_low(i: u32) -> u32 {
    16 + 8 * i + if cfg!(target_endian = "little") { 0 } else { 4 }
}
fn arg_high(i: u32) -> u32 {
    16 + 8 * i + if cfg!(target_endian = "little") { 4 } else { 0 }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The program: see the module's documentation.
pub fn program() -> Vec<libc::sock_filter> {
    let notify_always = [
        libc::SYS_connect,
        libc::SYS_listen,
        libc::SYS_sendmsg,
        libc::SYS_sendmmsg,
    ];
    let enosys = [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];
    let mut p = vec![
        stmt(LD_W_ABS, ARCH),
        // Another ABI: allowed (skip the next instruction, which allows).
        jump(JEQ_K, NATIVE_ARCH, 1, 0),
        stmt(RET_K, RET_ALLOW),
        stmt(LD_W_ABS, NR),
    ];
    if cfg!(target_arch = "x86_64") {
        p.push(jump(JGE_K, X32_BIT, 0, 1));
        p.push(stmt(RET_K, RET_ALLOW));
    }
    for nr in notify_always {
        p.push(jump(JEQ_K, nr as u32, 0, 1));
        p.push(stmt(RET_K, RET_USER_NOTIF));
    }
    for nr in enosys {
        p.push(jump(JEQ_K, nr as u32, 0, 1));
        p.push(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    }
    // sendto: told only when dest_addr (argument 4) is not NULL.
    p.push(jump(JEQ_K, libc::SYS_sendto as u32, 1, 0));
    p.push(stmt(RET_K, RET_ALLOW));
    p.push(stmt(LD_W_ABS, arg_low(4)));
    p.push(jump(JEQ_K, 0, 1, 0));
    p.push(stmt(RET_K, RET_USER_NOTIF));
    p.push(stmt(LD_W_ABS, arg_high(4)));
    p.push(jump(JEQ_K, 0, 0, 1));
    p.push(stmt(RET_K, RET_ALLOW));
    p.push(stmt(RET_K, RET_USER_NOTIF));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic BPF interpreter for the few instructions `program` uses, over a
    /// seccomp_data of (nr, arch, args).
    fn run(program: &[libc::sock_filter], nr: i64, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend((nr as i32).to_ne_bytes());
        data.extend(arch.to_ne_bytes());
        data.extend(0u64.to_ne_bytes());
        for a in args {
            data.extend(a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = program[pc];
            match i.code {
                LD_W_ABS => {
                    let at = i.k as usize;
                    acc = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                    pc += 1;
                }
                JEQ_K | JGE_K => {
                    let taken = if i.code == JEQ_K {
                        acc == i.k
                    } else {
                        acc >= i.k
                    };
                    pc += 1 + usize::from(if taken { i.jt } else { i.jf });
                }
                RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_stops_exactly_the_calls_it_decides_on() {
        let p = program();
        let a = NATIVE_ARCH;
        let addr = [3, 0x7fff_0000_1000, 16, 0, 0x7fff_0000_2000, 16];
        let null = [3, 0x7fff_0000_1000, 16, 0, 0, 0];
        let high_only = [3, 0, 0, 0, 0x7fff_0000_0000, 16];
        // (nr, arch, args) -> action
        let rows = [
            (libc::SYS_connect, a, null, RET_USER_NOTIF),
            (libc::SYS_listen, a, null, RET_USER_NOTIF),
            (libc::SYS_sendmsg, a, null, RET_USER_NOTIF),
            (libc::SYS_sendmmsg, a, null, RET_USER_NOTIF),
            (libc::SYS_sendto, a, addr, RET_USER_NOTIF),
            (libc::SYS_sendto, a, high_only, RET_USER_NOTIF),
            (libc::SYS_sendto, a, null, RET_ALLOW),
            (libc::SYS_write, a, null, RET_ALLOW),
            (libc::SYS_bind, a, addr, RET_ALLOW),
            (libc::SYS_socket, a, null, RET_ALLOW),
            (
                libc::SYS_io_uring_setup,
                a,
                null,
                RET_ERRNO | libc::ENOSYS as u32,
            ),
            (
                libc::SYS_io_uring_enter,
                a,
                null,
                RET_ERRNO | libc::ENOSYS as u32,
            ),
            (libc::SYS_connect, 0x4000_0003, addr, RET_ALLOW),
        ];
        for (nr, arch, args, want) in rows {
            assert_eq!(run(&p, nr, arch, args), want, "syscall {nr} arch {arch:#x}");
        }
        if cfg!(target_arch = "x86_64") {
            let x32_connect = libc::SYS_connect | i64::from(X32_BIT);
            assert_eq!(run(&p, x32_connect, a, addr), RET_ALLOW);
        }
    }

    #[test]
    fn syscalls_are_named_back() {
        assert_eq!(Call::of(libc::SYS_connect as i32), Some(Call::Connect));
        assert_eq!(Call::of(libc::SYS_sendmmsg as i32), Some(Call::SendMmsg));
        assert_eq!(Call::of(libc::SYS_read as i32), None);
    }
}
