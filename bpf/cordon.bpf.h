/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every cordon BPF file starts from: the kernel's types, libbpf's helpers, the ABI shared
 * with userspace (cordon/abi.h), and the few kernel constants the programs use. No hooks, no
 * maps, no decisions: the maps are in maps.bpf.h, the decision procedure in decide.bpf.h, the
 * side effects of a verdict (counters, events, penalties, trust) in effects.bpf.h.
 *
 * The guard programs (exec_guard, file_guard, compat_exit, net_guard, tamper_guard, and the
 * global functions in decide.bpf.c and effects.bpf.c) are compiled one file at a time and linked
 * into one object, guard.bpf.o (`bpftool gen object`, cmake/CordonBpf.cmake), whose skeleton
 * the controller loads: a map declared in maps.bpf.h is one map for every program.
 */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <cordon/abi.h>

#define EPERM 1
#define SIGKILL 9

/*
 * v & mask, with the mask kept: clang drops a mask that an earlier comparison makes redundant,
 * and the verifier, which may not have kept that comparison's bound, then refuses the access.
 */
#define cordon_bound(v, mask)                                                                  \
	({                                                                                     \
		__u32 __v = (v);                                                               \
		asm volatile("" : "+r"(__v));                                                  \
		__v & (mask);                                                                  \
	})

/* Every file says so; the linker keeps one copy (the "license" section is special to it). */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
