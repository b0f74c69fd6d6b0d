#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every package cordon's build, tests and VM tier need on Debian 12, then configures and
# builds. Idempotent: a second run installs nothing new and rebuilds only what changed.
#
# Usage: sudo scripts/bootstrap.sh [--no-build]
#   BUILD_DIR   build tree (default: build)
#   BUILD_TYPE  CMake build type (default: RelWithDebInfo)
set -euo pipefail

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

top=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$top/build}
build_type=${BUILD_TYPE:-RelWithDebInfo}
do_build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) do_build=0 ;;
    -h|--help) sed -n '3,9p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0): it installs Debian packages"
[ -r /etc/debian_version ] || die "this script supports Debian 12 (bookworm) only; /etc/debian_version is missing"
command -v apt-get >/dev/null || die "apt-get not found"

# One line per role so a reader sees why each package is here.
packages=(
  # toolchain and build
  build-essential cmake ninja-build pkg-config git
  # BPF: compiler for the bpf target, llvm-strip, libbpf headers and library, skeleton generator
  clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  # userspace libraries
  libcli11-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libsqlite3-dev nlohmann-json3-dev
  libseccomp-dev libssl-dev
  # tests
  libgtest-dev libgmock-dev libclang-rt-14-dev iproute2
  # VM tier: emulator, initramfs userland, tools to unpack the guest kernel package
  qemu-system-x86 busybox-static cpio dpkg-dev file
  # workload tier (tests/workload): the toolchains an agent runs, from Debian's packages
  python3 python3-venv python3-pip python3-wheel python3-setuptools python3-pytest
  cargo rustc golang-go
  # DNS gateway tests: a real resolver the tests start on loopback with records they write
  dnsmasq-base
  # journal sink tests: a systemd-journald the tests start in a journal namespace, journalctl
  systemd
)
# Node.js and npm: Debian's nodejs and npm, unless a Node.js with its own npm is already
# installed (NodeSource's nodejs package carries npm and conflicts with Debian's npm).
if ! dpkg-query -W -f='${Status}' nodejs 2>/dev/null | grep -q 'install ok installed'; then
  packages+=(nodejs npm)
elif [ ! -x /usr/bin/npm ]; then
  packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed; check the network and /etc/apt/sources.list"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
else
  say "all ${#packages[@]} packages already installed"
fi

[ -r /sys/kernel/btf/vmlinux ] || say "warning: /sys/kernel/btf/vmlinux is missing; set -DCORDON_VMLINUX_H=/path/to/vmlinux.h"

if [ "$do_build" -eq 1 ]; then
  say "configuring $build_dir ($build_type)"
  cmake -S "$top" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" >/dev/null \
    || die "cmake configure failed (see output above)"
  say "building"
  cmake --build "$build_dir" || die "build failed (see output above)"
  say "done: $build_dir/cordon"
fi
