#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# VM tier: runs the kernel-tier tests inside QEMU guests (TCG, no KVM needed) that boot Debian
# bookworm's 6.1 cloud kernel twice, side by side:
#   lsm    its default LSM list, where the BPF LSM is active: doctor must choose lsm
#   nobpf  an lsm= list without bpf (as Ubuntu's kernels ship): doctor must choose fmod_ret
#
# Usage: scripts/vm-test.sh --build-dir DIR [--shell [BOOT]] [--bench SECTIONS]
#   --build-dir DIR  cordon build tree (holds cordon and tests/cordon_kernel_tests)
#   --shell [BOOT]   boot BOOT (default lsm) to a busybox shell instead of running the tests
#   --bench SECTIONS boot lsm and run DIR/bench/cordon_bench SECTIONS ("backends rules") there
#                    instead of the tests, with CORDON_BENCH_BACKENDS=lsm,fmod_ret (one run,
#                    both backends side by side); its output is printed between
#                    CORDON-VM-BENCH-BEGIN and CORDON-VM-BENCH-END
# Environment:
#   CORDON_VM_KERNEL_PKG  Debian package to boot (default: newest linux-image-6.1.0-*-cloud-amd64)
#   CORDON_VM_TIMEOUT     seconds before a guest is stopped (default 2400)
#   CORDON_VM_BOOTS       the boots to run and the backends each tests, as BOOT=B,B ...; B/tables
#                         runs only the decision tables (every hook and escape trick, one shared
#                         program set) of backend B, not the suites that start a cordond per test.
#                         Default: "lsm=lsm,fmod_ret/tables,compat/tables
#                         nobpf=fmod_ret,compat/tables": every backend each boot offers runs the
#                         tables, lsm and fmod_ret run everything on the boot where doctor
#                         chooses them; compat's whole table runs natively in the kernel tier.
#                         "lsm=lsm,fmod_ret,compat nobpf=fmod_ret,compat" runs all of it on both
#                         (about 2.5 times as long under TCG).
#   CORDON_VM_FILTER      a --gtest_filter for a quick partial run while developing (default:
#                         every test of the boot's backends)
#   CORDON_VM_PARALLEL    1 (default): the boots run at the same time, one QEMU each; 0: in turn
#   CORDON_VM_APPEND      more kernel command line for every boot
#   CORDON_VM_SPLIT_RUNTEST  1 (default): RunTest's plumbing cases run in one boot each (below)
#   CORDON_VM_PS          SECONDS: every SECONDS, each guest process's state, wait channel and
#                         kernel stack on the console (to see what a hung test waits for)
#
# The kernel package is fetched with `apt-get download` and unpacked with `dpkg -x` into
# DIR/vm/cache; it is never installed on the host. QEMU exits 0 even when the guest fails, so
# each boot is judged only by the result line its guest prints:
#   CORDON-VM-RESULT: boot=NAME passed=N failed=N skipped=N rc=N backend=NAME
# and passes when failed=0, rc=0, passed>0, doctor chose the boot's backend, and only cases
# that a backend cannot see by design (compat) or cannot run on that boot (lsm without the BPF
# LSM) were skipped. Console logs: DIR/vm/console-BOOT.log.
set -euo pipefail

say() { printf 'vm-test: %s\n' "$*"; }
die() { printf 'vm-test: error: %s\n' "$*" >&2; exit 1; }

build_dir=""
shell=""
bench=""
filter=${CORDON_VM_FILTER:-}
boots_spec=${CORDON_VM_BOOTS:-"lsm=lsm,fmod_ret/tables,compat/tables nobpf=fmod_ret,compat/tables"}
parallel=${CORDON_VM_PARALLEL:-1}
# The one test that switches kernel.ftrace_enabled off and on again runs last, in a run of its
# own: after that toggle, Debian's 6.1 kernel refuses every new trampoline attach (EINVAL), so
# no lsm or fmod_ret program set could load after it.
last_test=RunTest.FtraceSwitchedOffStopsTheAgent
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --shell) shell=lsm; shift; case "${1:-}" in lsm|nobpf) shell=$1; shift ;; esac ;;
    --bench) bench=$2; shift 2 ;;
    -h|--help) sed -n '3,27p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[ -n "$build_dir" ] || die "--build-dir is required"
build_dir=$(cd "$build_dir" && pwd)
cordon_bin=$build_dir/cordon
cordond_bin=$build_dir/cordond
tests_bin=$build_dir/tests/cordon_kernel_tests
[ -x "$cordon_bin" ] && [ -x "$build_dir/cordon-cli" ] && [ -x "$cordond_bin" ] && [ -x "$tests_bin" ] \
  || die "build first: $cordon_bin, $build_dir/cordon-cli, $cordond_bin or $tests_bin is missing"
for tool in qemu-system-x86_64 busybox cpio gzip apt-get dpkg ldd; do
  command -v "$tool" >/dev/null || die "$tool not found; run scripts/bootstrap.sh"
done
busybox_bin=$(command -v busybox)
file -L "$busybox_bin" | grep -q 'statically linked' \
  || die "$busybox_bin is not static; install busybox-static (scripts/bootstrap.sh does)"

vm_dir=$build_dir/vm
cache=$vm_dir/cache
mkdir -p "$cache"

# --- guest kernel ---------------------------------------------------------------------------
pick_kernel_pkg() {
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | awk '{print $1}' | sort -V | tail -n 1
}
pkg=${CORDON_VM_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
  # Reuse a package already in the cache, so a run needs no network once it has one.
  pkg=$( (ls "$cache" 2>/dev/null || true) \
        | sed -n 's#^\(linux-image-6\.1\.0-[0-9]*-cloud-amd64\)_.*\.deb$#\1#p' | sort -V | tail -n 1)
fi
if [ -z "$pkg" ]; then
  pkg=$(pick_kernel_pkg)
  if [ -z "$pkg" ]; then
    say "no linux-image-6.1.0-*-cloud-amd64 in the apt lists; running apt-get update"
    apt-get update -qq || die "apt-get update failed"
    pkg=$(pick_kernel_pkg)
  fi
  [ -n "$pkg" ] || die "no linux-image-6.1.0-*-cloud-amd64 package found in Debian bookworm's lists"
fi
if ! ls "$cache/${pkg}"_*.deb >/dev/null 2>&1; then
  say "downloading $pkg (not installed on the host)"
  (cd "$cache" && apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed' || true)
  ls "$cache/${pkg}"_*.deb >/dev/null 2>&1 || die "apt-get download $pkg failed"
fi
kdir=$cache/$pkg
if [ ! -d "$kdir/boot" ]; then
  rm -rf "$kdir.tmp" && dpkg -x "$cache/${pkg}"_*.deb "$kdir.tmp" && mv "$kdir.tmp" "$kdir"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n 1)
[ -r "$vmlinuz" ] || die "no vmlinuz in $pkg"

# --- initramfs ------------------------------------------------------------------------------
root=$vm_dir/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,etc,root,vmwork,tmp}
cp "$busybox_bin" "$root/bin/busybox"

copy_with_libs() { # copies a binary to the same absolute path, with every shared library it needs
  local bin=$1 dest=$root$1
  mkdir -p "$(dirname "$dest")"
  cp "$bin" "$dest"
  { ldd "$bin" || true; } | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
}
copy_with_libs "$cordon_bin"      # kept at its build path: the kernel tests run it from there
# The kernel's socket diagnostics (sock_diag), which a host loads on demand: cordond's metrics
# endpoint asks for each client's TCP socket, its DNS gateway for each querying socket (UDP and
# TCP). The guest has no module tree to load them from.
mkdir -p "$root/lib/cordon-modules"
for m in inet_diag tcp_diag udp_diag unix_diag; do
  ko=$(find "$kdir/lib/modules" -name "$m.ko*" | head -n 1)
  [ -n "$ko" ] || die "no $m module in $pkg"
  case $ko in
    *.xz) xz -dc "$ko" > "$root/lib/cordon-modules/$m.ko" ;;
    *.zst) zstd -qdc "$ko" > "$root/lib/cordon-modules/$m.ko" ;;
    *) cp "$ko" "$root/lib/cordon-modules/$m.ko" ;;
  esac
done
copy_with_libs "$build_dir/cordon-cli" # the verbs the static front end (cordon) passes on
copy_with_libs "$cordond_bin"     # likewise: the daemon tests start it
copy_with_libs "$tests_bin"
if [ -n "$bench" ]; then
  [ -x "$build_dir/bench/cordon_bench" ] || die "build the benchmark first: cmake --build $build_dir --target cordon_bench"
  copy_with_libs "$build_dir/bench/cordon_bench"
fi
copy_with_libs /usr/bin/true      # the kernel tests copy it as their exec fixtures
# The workload tier's git job runs in the guests (RunTest.GitJobUnder...): git, bash, git's
# templates, and the shipped policy and job file at their source paths. The other toolchains
# (compilers, Python, Node, Go, Rust) do not fit an initramfs; they run on the host only.
copy_with_libs /usr/bin/git
copy_with_libs /usr/lib/git-core/git
ln -sf git "$root/usr/bin/git-upload-pack" # the fixture's clone (unguarded)
copy_with_libs /usr/bin/bash
# The DNS gateway's tests start a real resolver with records of their own.
copy_with_libs /usr/sbin/dnsmasq
mkdir -p "$root/usr/share/git-core" && cp -r /usr/share/git-core/templates "$root/usr/share/git-core/"
src_dir=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root$src_dir/policies" "$root$src_dir/tests/workload/jobs" "$root/home"
cp "$src_dir"/policies/*.yaml "$root$src_dir/policies/"
cp "$src_dir/tests/workload/jobs/git.sh" "$root$src_dir/tests/workload/jobs/"
# Users for `cordon run --user` (glibc reads these files itself).
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\ncordon-wl:x:1001:1001:cordon workload tests:/home/cordon-wl:/usr/bin/bash\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\ncordon-wl:x:1001:\n' > "$root/etc/group"

# What each boot is: its kernel command line, the backend doctor must choose, and every backend
# the kernel offers there.
boot_append() { case "$1" in lsm) echo "" ;; nobpf) echo "lsm=lockdown,capability,yama,apparmor" ;; esac; }
boot_expect() { case "$1" in lsm) echo lsm ;; nobpf) echo fmod_ret ;; esac; }
boot_offers() { case "$1" in lsm) echo "lsm fmod_ret compat" ;; nobpf) echo "fmod_ret compat" ;; esac; }
all_backends="lsm fmod_ret compat"

boots=""
for spec in $boots_spec; do
  name=${spec%%=*} list=${spec#*=}
  [ -n "$(boot_expect "$name")" ] || die "CORDON_VM_BOOTS: unknown boot '$name' (lsm or nobpf)"
  for b in ${list//,/ }; do
    case " $(boot_offers "$name") " in *" ${b%/tables} "*) ;; *) die "CORDON_VM_BOOTS: boot $name cannot run backend '$b'" ;; esac
  done
  boots="$boots $name"
  eval "backends_$name=\"${list//,/ }\""
done
[ -n "$shell" ] && boots=$shell
[ -n "$bench" ] && [ -z "${CORDON_VM_BOOTS:-}" ] && boots=lsm

# The gtest filters of a boot: every test, less the parameters of backends it does not run
# (non-parameterised tests use the backend doctor chooses). ForensicsHostTest covers the event
# store (userspace: the same on every kernel) on the host; under TCG it would only add minutes.
# RunTest's cases that exercise cordon run's own plumbing (exit status, descriptors, signals,
# users, stderr), the same code whichever trampoline backend guards: each runs in one boot only
# (CORDON_VM_SPLIT_RUNTEST=0 runs all of them in both). Those that decide, kill, freeze or must
# see no false denial run in both.
runtest_only_lsm="RunTest.TwoAgentsWithDifferentPoliciesDoNotInterfere:RunTest.AgentInheritsNoDescriptorOfCordon:RunTest.ExitsWithTheCommandsStatus:RunTest.UserOptionRunsTheCommandAsThatUser:RunTest.InvalidPolicyChangesNothingAndExits125:RunTest.CompatWarnsWhenTheAgentRunsAsRoot"
runtest_only_nobpf="RunTest.AgentRunsWithNoNewPrivsInItsOwnSession:RunTest.SigtermStopsTheAgentAndCleansUp:RunTest.CordonIsShieldedFromTheOomKillerAndTheAgentIsNot:RunTest.AClosedStderrDoesNotEndCordon:RunTest.TraceAllRecordsAllowedAccessesInTheEventsFile"
main_filter_of() {
  local name=$1 neg="$last_test:ForensicsHostTest.*" b
  if [ "${CORDON_VM_SPLIT_RUNTEST:-1}" = 1 ]; then
    case "$name" in
      lsm) neg="$neg:$runtest_only_nobpf" ;;
      nobpf) neg="$neg:$runtest_only_lsm" ;;
    esac
  fi
  local mine; eval "mine=\$backends_$name"
  for b in $all_backends; do
    case " $mine " in
      *" $b "*) ;;
      # Only the tables (Cases/, Tricks/): not the suites that start a cordond per test.
      *" $b/tables "*) neg="$neg:Backends/*/$b:Lsm/*/$b" ;;
      *) neg="$neg:*/$b:*/${b}_*" ;;
    esac
  done
  case "$filter" in
    "") echo "*-$neg" ;;
    *-*) echo "$filter:$last_test" ;;
    *) echo "$filter-$last_test" ;;
  esac
}
last_filter_of() {
  case "$filter" in ""|*Ftrace*|RunTest.\*|\*) echo "$last_test" ;; *) echo "" ;; esac
}

for name in $boots; do
  cat > "$root/vmwork/boot-$name.env" <<ENV
expect=$(boot_expect "$name")
main_filter='$(main_filter_of "$name")'
last_filter='$(last_filter_of)'
ENV
done

cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security
ip link set lo up
for m in inet_diag tcp_diag udp_diag unix_diag; do insmod /lib/cordon-modules/\$m.ko || echo "CORDON-VM: insmod \$m failed"; done
boot=\$(sed -n 's/.*cordon.boot=\([a-z]*\).*/\1/p' /proc/cmdline)
echo; echo "CORDON-VM: boot \$boot, kernel \$(uname -r), LSMs: \$(cat /sys/kernel/security/lsm)"
if [ -n "$shell" ]; then setsid cttyhack sh; poweroff -f; fi
. /vmwork/boot-\$boot.env
# The build tree may live anywhere, /tmp included: nothing is mounted over it.
cd /vmwork
export CORDON_VERIFIER_STATS=${CORDON_VERIFIER_STATS:-0}
$cordon_bin doctor
backend=\$($cordon_bin doctor --json | sed -n 's/^  "backend": "\(.*\)",\$/\1/p')
if [ -n "$bench" ]; then
  echo "CORDON-VM-BENCH-BEGIN (QEMU TCG, no KVM: absolute times are those of an emulated CPU)"
  CORDON_BENCH_BACKENDS=${CORDON_BENCH_BACKENDS:-lsm,fmod_ret} CORDON_BENCH_REPS=${CORDON_BENCH_REPS:-5} \
    CORDON_BENCH_OPS_SCALE=${CORDON_BENCH_OPS_SCALE:-10} $build_dir/bench/cordon_bench $bench
  echo "CORDON-VM-BENCH-END rc=\$?"
  poweroff -f
fi
# CORDON_VM_PS=SECONDS: every SECONDS, each process's state and kernel wait channel on the
# console (to see what a hung test waits for).
if [ -n "${CORDON_VM_PS:-}" ]; then
  ( while sleep ${CORDON_VM_PS:-0}; do echo "CORDON-VM-PS:"; for p in /proc/[0-9]*; do
      echo "  \${p#/proc/} \$(cat \$p/comm 2>/dev/null) \$(sed -n 's/^State:.//p' \$p/status 2>/dev/null) \$(cat \$p/wchan 2>/dev/null) \$(sed -n 's/^Policy.*//p' \$p/sched 2>/dev/null)"
      [ -r \$p/stack ] && sed 's/^/      /' \$p/stack 2>/dev/null | head -6
    done; done ) &
fi
# Streamed to the console as it runs, so that a hang shows where it is.
( CORDON_EXPECT_BACKEND=\$expect $tests_bin --gtest_color=no --gtest_filter="\$main_filter"; echo \$? > /vmwork/rc ) 2>&1 | tee /vmwork/tests.log
rc=\$(cat /vmwork/rc)
if [ -n "\$last_filter" ]; then
  ( CORDON_EXPECT_BACKEND=\$expect $tests_bin --gtest_color=no --gtest_filter="\$last_filter"; echo \$? > /vmwork/rc2 ) 2>&1 | tee /vmwork/tests2.log
  [ "\$(cat /vmwork/rc2)" = 0 ] || rc=\$(cat /vmwork/rc2)
fi
count() { # sums one gtest summary count over both runs
  cat /vmwork/tests*.log | sed -n "s/^\[  \$1 *\] \([0-9]*\) tests\?\$2\$/\1/p" | awk '{s+=\$1} END {print s+0}'
}
passed=\$(count PASSED '\.')
failed=\$(count FAILED ', listed below:')
skipped=\$(count SKIPPED ', listed below:')
echo "CORDON-VM-RESULT: boot=\$boot passed=\${passed:-0} failed=\${failed:-0} skipped=\${skipped:-0} rc=\$rc backend=\${backend:-unknown}"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$vm_dir/initramfs.cpio.gz"
say "initramfs $(du -h "$vm_dir/initramfs.cpio.gz" | cut -f1), kernel $pkg"

# --- boot -----------------------------------------------------------------------------------
timeout_s=${CORDON_VM_TIMEOUT:-2400}
qemu_args_of() { # the QEMU command line of one boot
  local name=$1
  # A small disk (NVMe is built into the cloud kernel): the tests prove that an agent cannot
  # read a raw block device.
  printf 'cordon-disk-secret\n' > "$vm_dir/disk-$name.img"
  truncate -s 1M "$vm_dir/disk-$name.img"
  qemu_args=(-machine q35 -cpu max -smp 1 -m 2048 -nographic -no-reboot
             -drive "file=$vm_dir/disk-$name.img,if=none,id=disk0,format=raw"
             -device nvme,drive=disk0,serial=cordon
             -kernel "$vmlinuz" -initrd "$vm_dir/initramfs.cpio.gz"
             -append "console=ttyS0 panic=-1 oops=panic loglevel=4 cordon.boot=$name $(boot_append "$name") ${CORDON_VM_APPEND:-}")
}
if [ -n "$shell" ]; then
  qemu_args_of "$shell"
  exec qemu-system-x86_64 "${qemu_args[@]}"
fi

run_boot() { # boots one guest to the end; its console goes to console-NAME.log
  local name=$1 log=$vm_dir/console-$1.log start rc
  qemu_args_of "$name"
  start=$(date +%s)
  set +e
  timeout "$timeout_s" qemu-system-x86_64 "${qemu_args[@]}" </dev/null > "$log" 2>&1
  rc=$?
  set -e
  echo "$rc $(( $(date +%s) - start ))" > "$vm_dir/qemu-$name.rc"
}
say "booting:$boots (TCG, $( [ "$parallel" = 1 ] && echo "side by side" || echo "in turn" ), timeout ${timeout_s}s each); console logs: $vm_dir/console-BOOT.log"
pids=""
for name in $boots; do
  rm -f "$vm_dir/qemu-$name.rc"
  if [ "$parallel" = 1 ]; then run_boot "$name" & pids="$pids $!"; else run_boot "$name"; fi
done
for pid in $pids; do wait "$pid" || true; done

if [ -n "$bench" ]; then
  for name in $boots; do
    log=$vm_dir/console-$name.log
    read -r qemu_rc secs < "$vm_dir/qemu-$name.rc" || { qemu_rc=1 secs=0; }
    say "boot $name: guest ran ${secs}s (qemu exit $qemu_rc)"
    tr -d '\r' < "$log" | sed -n '/CORDON-VM-BENCH-BEGIN/,/CORDON-VM-BENCH-END/p'
    tr -d '\r' < "$log" | grep -q 'CORDON-VM-BENCH-END rc=0' || die "the benchmark failed in boot $name; see $log"
  done
  exit 0
fi
ok=1
for name in $boots; do
  log=$vm_dir/console-$name.log
  printf '\n'
  tr -d '\r' < "$log" | sed -n '/CORDON-VM:/,$p'
  read -r qemu_rc secs < "$vm_dir/qemu-$name.rc" || { qemu_rc=1 secs=0; }
  say "boot $name: guest ran ${secs}s (qemu exit $qemu_rc)"
  if [ "$qemu_rc" = 124 ]; then say "FAIL: boot $name did not finish within ${timeout_s}s"; ok=0; continue; fi
  result=$(tr -d '\r' < "$log" | grep '^CORDON-VM-RESULT:' | tail -n 1 || true)
  if [ -z "$result" ]; then say "FAIL: boot $name printed no result line (kernel panic or crash?); see $log"; ok=0; continue; fi
  val() { printf '%s\n' "$result" | sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p"; }
  passed=$(val passed) failed=$(val failed) skipped=$(val skipped) rc=$(val rc) backend=$(val backend)
  say "boot $name: $passed passed, $failed failed, $skipped skipped; doctor chose '$backend'"
  [ "$failed" = 0 ] || { say "FAIL: boot $name: $failed tests failed"; ok=0; }
  # Only cases a backend cannot see by design (compat: unlink, rename, link, truncate, tamper)
  # and those of a backend this boot does not offer may skip; every other case must run.
  allowed='/compat_'
  for b in $all_backends; do
    case " $(boot_offers "$name") " in *" $b "*) ;; *) allowed="$allowed\\|/$b\$\\|/${b}_" ;; esac
  done
  bad_skips=$(tr -d '\r' < "$log" | grep -a '^\[  SKIPPED \] [A-Za-z]' | grep -v 'listed below' \
              | sed 's/ (.*//' | grep -v "$allowed" || true)
  [ -z "$bad_skips" ] || { say "FAIL: boot $name: tests skipped that must run on it:"; printf '%s\n' "$bad_skips"; ok=0; }
  [ "$rc" = 0 ] || { say "FAIL: boot $name: the test binary exited $rc"; ok=0; }
  [ "${passed:-0}" -gt 0 ] || { say "FAIL: boot $name: no test passed"; ok=0; }
  want=$(boot_expect "$name")
  [ "$backend" = "$want" ] || { say "FAIL: boot $name: cordon doctor chose '$backend', expected '$want'"; ok=0; }
done
[ $ok = 1 ] || exit 1
say "PASS"
