#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# VM tier: runs the kernel-tier tests inside a QEMU guest (TCG, no KVM needed) that boots Debian
# bookworm's 6.1 cloud kernel, whose BPF LSM is active, so the lsm backend is tested for real.
#
# Usage: scripts/vm-test.sh --build-dir DIR [--shell]
#   --build-dir DIR  cordon build tree (holds cordon and tests/cordon_kernel_tests)
#   --shell          boot to a busybox shell instead of running the tests (debugging)
# Environment:
#   CORDON_VM_KERNEL_PKG  Debian package to boot (default: newest linux-image-6.1.0-*-cloud-amd64)
#   CORDON_VM_TIMEOUT     seconds before the guest is stopped (default 1800)
#   CORDON_VM_FILTER      a --gtest_filter for a quick partial run while developing (default:
#                         every test)
#
# The kernel package is fetched with `apt-get download` and unpacked with `dpkg -x` into
# DIR/vm/cache; it is never installed on the host. QEMU exits 0 even when the guest fails, so the
# run is judged only by the result line the guest prints:
#   CORDON-VM-RESULT: passed=N failed=N skipped=N rc=N backend=NAME
# and passes when failed=0, rc=0, passed>0, backend=lsm, and only compat cases that compat cannot
# see by design were skipped.
set -euo pipefail

say() { printf 'vm-test: %s\n' "$*"; }
die() { printf 'vm-test: error: %s\n' "$*" >&2; exit 1; }

build_dir=""
shell=0
filter=${CORDON_VM_FILTER:-}
# The one test that switches kernel.ftrace_enabled off and on again runs last, in a run of its
# own: after that toggle, Debian's 6.1 kernel refuses every new trampoline attach (EINVAL), so
# no lsm program set could load after it.
last_test=RunTest.FtraceSwitchedOffStopsTheAgent
# ForensicsHostTest covers the event store (userspace: the same on every kernel) on the host;
# under TCG it would only add minutes. ForensicsTest, which needs the kernel, runs here.
case "$filter" in
  "") main_filter="*-$last_test:ForensicsHostTest.*"; last_filter=$last_test ;;
  *-*) main_filter="$filter:$last_test"; last_filter="" ;;
  *) main_filter="$filter-$last_test"; last_filter="" ;;
esac
case "$filter" in *Ftrace*|RunTest.\*|\*) last_filter=$last_test ;; esac
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --shell) shell=1; shift ;;
    -h|--help) sed -n '3,19p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[ -n "$build_dir" ] || die "--build-dir is required"
build_dir=$(cd "$build_dir" && pwd)
cordon_bin=$build_dir/cordon
cordond_bin=$build_dir/cordond
tests_bin=$build_dir/tests/cordon_kernel_tests
[ -x "$cordon_bin" ] && [ -x "$cordond_bin" ] && [ -x "$tests_bin" ] \
  || die "build first: $cordon_bin, $cordond_bin or $tests_bin is missing"
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
  ldd "$bin" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
}
copy_with_libs "$cordon_bin"      # kept at its build path: the kernel tests run it from there
copy_with_libs "$cordond_bin"     # likewise: the daemon tests start it
copy_with_libs "$tests_bin"
copy_with_libs /usr/bin/true      # the kernel tests copy it as their exec fixtures
# Users for `cordon run --user` (glibc reads these files itself).
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"

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
echo; echo "CORDON-VM: kernel \$(uname -r), LSMs: \$(cat /sys/kernel/security/lsm)"
if [ $shell = 1 ]; then setsid cttyhack sh; poweroff -f; fi
# The build tree may live anywhere, /tmp included: nothing is mounted over it.
cd /vmwork
export CORDON_VERIFIER_STATS=${CORDON_VERIFIER_STATS:-0}
$cordon_bin doctor
backend=\$($cordon_bin doctor --json | sed -n 's/^  "backend": "\(.*\)",\$/\1/p')
# Streamed to the console as it runs, so that a hang shows where it is.
( CORDON_EXPECT_BACKEND=lsm $tests_bin --gtest_color=no --gtest_filter='$main_filter'; echo \$? > /vmwork/rc ) 2>&1 | tee /vmwork/tests.log
rc=\$(cat /vmwork/rc)
if [ -n "$last_filter" ]; then
  ( CORDON_EXPECT_BACKEND=lsm $tests_bin --gtest_color=no --gtest_filter='$last_filter'; echo \$? > /vmwork/rc2 ) 2>&1 | tee /vmwork/tests2.log
  [ "\$(cat /vmwork/rc2)" = 0 ] || rc=\$(cat /vmwork/rc2)
fi
count() { # sums one gtest summary count over both runs
  cat /vmwork/tests*.log | sed -n "s/^\[  \$1 *\] \([0-9]*\) tests\?\$2\$/\1/p" | awk '{s+=\$1} END {print s+0}'
}
passed=\$(count PASSED '\.')
failed=\$(count FAILED ', listed below:')
skipped=\$(count SKIPPED ', listed below:')
echo "CORDON-VM-RESULT: passed=\${passed:-0} failed=\${failed:-0} skipped=\${skipped:-0} rc=\$rc backend=\${backend:-unknown}"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$vm_dir/initramfs.cpio.gz"
say "initramfs $(du -h "$vm_dir/initramfs.cpio.gz" | cut -f1), kernel $pkg"

# --- boot -----------------------------------------------------------------------------------
log=$vm_dir/console.log
timeout_s=${CORDON_VM_TIMEOUT:-1800}
# A small disk (NVMe is built into the cloud kernel): the tests prove that an agent cannot read
# a raw block device.
printf 'cordon-disk-secret\n' > "$vm_dir/disk.img"
truncate -s 1M "$vm_dir/disk.img"
qemu_args=(-machine q35 -cpu max -smp 1 -m 1024 -nographic -no-reboot
           -drive "file=$vm_dir/disk.img,if=none,id=disk0,format=raw" -device nvme,drive=disk0,serial=cordon
           -kernel "$vmlinuz" -initrd "$vm_dir/initramfs.cpio.gz"
           -append "console=ttyS0 panic=-1 oops=panic loglevel=4")
if [ $shell = 1 ]; then
  exec qemu-system-x86_64 "${qemu_args[@]}"
fi
say "booting (TCG, timeout ${timeout_s}s); console log: $log"
start=$(date +%s)
set +e
timeout "$timeout_s" qemu-system-x86_64 "${qemu_args[@]}" </dev/null > "$log" 2>&1
qemu_rc=$?
set -e
tr -d '\r' < "$log" | sed -n '/CORDON-VM:/,$p'
say "guest ran $(( $(date +%s) - start ))s (qemu exit $qemu_rc)"
[ $qemu_rc -ne 124 ] || die "the guest did not finish within ${timeout_s}s"

result=$(tr -d '\r' < "$log" | grep '^CORDON-VM-RESULT:' | tail -n 1 || true)
[ -n "$result" ] || die "the guest printed no result line (kernel panic or crash?); see $log"
val() { printf '%s\n' "$result" | sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p"; }
passed=$(val passed) failed=$(val failed) skipped=$(val skipped) rc=$(val rc) backend=$(val backend)
say "$passed passed, $failed failed, $skipped skipped in the guest; doctor chose '$backend'"
ok=1
[ "$failed" = 0 ] || { say "FAIL: $failed tests failed in the guest"; ok=0; }
# Only compat cases the compat backend cannot see by design (unlink, rename, link, truncate,
# tamper) may skip; every lsm case must run.
bad_skips=$(tr -d '\r' < "$log" | grep -a '^\[  SKIPPED \] [A-Za-z]' | grep -v 'listed below' \
            | grep -v '/compat_' || true)
[ -z "$bad_skips" ] || { say "FAIL: tests skipped in the guest that must run on 6.1:"; printf '%s\n' "$bad_skips"; ok=0; }
[ "$rc" = 0 ] || { say "FAIL: the test binary exited $rc"; ok=0; }
[ "${passed:-0}" -gt 0 ] || { say "FAIL: no test passed"; ok=0; }
[ "$backend" = lsm ] || { say "FAIL: cordon doctor chose '$backend' in the guest, expected 'lsm'"; ok=0; }
[ $ok = 1 ] || exit 1
say "PASS"
