#!/usr/bin/env python3
"""Run a command under a seccomp filter that refuses user namespaces, as a container
runtime's default profile does for a process without CAP_SYS_ADMIN.

usage: deny-userns.py COMMAND [ARG]...

The filter (x86_64 only; other architectures pass) returns EPERM for unshare(2) and clone(2)
with CLONE_NEWUSER in their flags and ENOSYS for clone3(2), whose flags it cannot read (glibc
falls back to clone then); every other call is allowed. no_new_privs is set first, as the
kernel asks of a process without CAP_SYS_ADMIN that installs a filter.
"""
import ctypes
import errno
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
CLONE_NEWUSER = 0x10000000
ALLOW = 0x7FFF0000
ERRNO = 0x00050000
LD_ABS, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06
NR_CLONE, NR_UNSHARE, NR_CLONE3 = 56, 272, 435

# (code, jump if true, jump if false, k); jumps count from the next instruction.
PROGRAM = [
    (LD_ABS, 0, 0, 4),  # 0: seccomp_data.arch
    (JEQ, 0, 4, AUDIT_ARCH_X86_64),  # 1: other architectures: 6, allow
    (LD_ABS, 0, 0, 0),  # 2: seccomp_data.nr
    (JEQ, 7, 0, NR_CLONE3),  # 3: -> 11, ENOSYS
    (JEQ, 2, 0, NR_UNSHARE),  # 4: -> 7, its flags
    (JEQ, 1, 0, NR_CLONE),  # 5: -> 7, its flags
    (RET, 0, 0, ALLOW),  # 6
    (LD_ABS, 0, 0, 16),  # 7: the low half of args[0], the flags
    (JSET, 1, 0, CLONE_NEWUSER),  # 8: -> 10, EPERM
    (RET, 0, 0, ALLOW),  # 9
    (RET, 0, 0, ERRNO | errno.EPERM),  # 10
    (RET, 0, 0, ERRNO | errno.ENOSYS),  # 11
]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    code = b"".join(struct.pack("HBBI", *insn) for insn in PROGRAM)
    filters = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog: unsigned short len, then (aligned) the pointer to the instructions.
    fprog = struct.pack("HxxxxxxP", len(PROGRAM), ctypes.addressof(filters))
    fprog_buf = ctypes.create_string_buffer(fprog, len(fprog))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        sys.exit(f"deny-userns.py: no_new_privs: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog_buf), 0, 0) != 0:
        sys.exit(f"deny-userns.py: seccomp: {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[1], sys.argv[1:])


main()
