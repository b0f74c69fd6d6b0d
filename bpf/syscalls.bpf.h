/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Syscall numbers and syscall-register access per architecture, in one place: the compat
 * backend decides at syscall exits (compat_exit.bpf.c) and must know which call ended and read
 * its first argument from the saved registers. No hooks, no maps, no decisions.
 *
 * Only x86_64 is supported. The numbers are those of the native 64-bit ABI; on compat the
 * seccomp layer refuses the foreign ABIs (int $0x80, x32), whose numbers differ, so these are
 * the only ones an agent can reach. Another architecture must add its numbers (arm64 uses the
 * generic table: openat 56, connect 203, ...; it has no open() or creat()), its registers, and
 * the seccomp layer's list of foreign ABIs, and be tested, before it builds.
 */
#pragma once

#if defined(__TARGET_ARCH_x86)

#define CORDON_NR_open 2
#define CORDON_NR_connect 42
#define CORDON_NR_listen 50
#define CORDON_NR_creat 85
#define CORDON_NR_openat 257
#define CORDON_NR_open_by_handle_at 304
#define CORDON_NR_openat2 437

/* The number of the syscall that is ending. The kernel runs the call numbered by the low 32 bits
 * of orig_ax (do_syscall_64 takes an int): compare those, or a number with high bits set would
 * pass for no syscall while the kernel ran one. */
#define CORDON_SYSCALL_NR(regs) ((long)(int)BPF_CORE_READ(regs, orig_ax))
/* The first argument of the syscall that is ending (rdi, preserved in the saved registers). */
#define CORDON_SYSCALL_ARG1(regs) ((long)BPF_CORE_READ(regs, di))

#elif defined(__TARGET_ARCH_arm64)
#error "cordon: arm64 is not supported yet: bpf/syscalls.bpf.h has only x86_64's syscall numbers and registers (see its header for what a port needs)"
#else
#error "cordon: no syscall numbers for this architecture: define __TARGET_ARCH_x86 (bpf/syscalls.bpf.h)"
#endif
