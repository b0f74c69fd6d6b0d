#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds and runs the benchmark (as root) and writes docs/benchmarks.md with its output.
# Usage: sudo bench/run.sh [BUILD_DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh: run as root" >&2; exit 1; }
cmake --build "$build" --target cordon_bench
out=$("$build/bench/cordon_bench")
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`sudo bench/run.sh\` on $(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) cores."
  echo "Configurations are interleaved in one run; ratios are medians relative to \"absent\"."
  echo "Targets: loaded <= 1.03; agent <= 1.10 for open and connect, <= 1.05 for exec."
  echo
  echo "$out"
} > "$top/docs/benchmarks.md"
echo "$out"
