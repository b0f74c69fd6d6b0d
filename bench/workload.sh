#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Wall time of each real-toolchain job (tests/workload/jobs) bare and guarded by coding-agent,
# in alternating pairs in one run (bare, guarded, bare, guarded, ...), and the ratio of the
# medians; then the time of `cordon policy suggest` over 1,000,000 records.
# Usage: sudo bench/workload.sh --cordon BIN [--pairs N] [--jobs "npm python ..."]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
cordon="" pairs=5 jobs="npm python rust go c git"
while [ $# -gt 0 ]; do
  case "$1" in
    --cordon) cordon=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "usage: $0 --cordon BIN [--pairs N] [--jobs LIST]" >&2; exit 2 ;;
  esac
done
[ -x "$cordon" ] || { echo "--cordon BIN is required" >&2; exit 2; }
wl="$top/tests/workload/workload.sh"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
echo "| job | bare median (s) | guarded median (s) | ratio | pairs |"
echo "|---|---:|---:|---:|---:|"
for job in $jobs; do
  : > /tmp/bench-bare.$$; : > /tmp/bench-guarded.$$
  for _ in $(seq "$pairs"); do
    t0=$(now); "$wl" --cordon "$cordon" --job "$job" --bare >/dev/null; t1=$(now)
    "$wl" --cordon "$cordon" --job "$job" >/dev/null; t2=$(now)
    echo "$t1 - $t0" | bc >> /tmp/bench-bare.$$
    echo "$t2 - $t1" | bc >> /tmp/bench-guarded.$$
  done
  b=$(median < /tmp/bench-bare.$$); g=$(median < /tmp/bench-guarded.$$)
  printf '| %s | %.2f | %.2f | %.3f | %s |\n' "$job" "$b" "$g" "$(echo "$g / $b" | bc -l)" "$pairs"
done
rm -f /tmp/bench-bare.$$ /tmp/bench-guarded.$$

# suggest over 1,000,000 records: a real run's records, repeated with the paths varied.
work=$(mktemp -d /tmp/cordon-bench-suggest.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$wl" --cordon "$cordon" --job python --mode audit \
  --policy <(sed 's/^  mode: enforce$/  mode: enforce\n  trace: all/' "$top/policies/coding-agent.yaml") \
  --events-out "$work/run.jsonl" >/dev/null 2>&1 || true
python3 - "$work/run.jsonl" "$work/million.jsonl" <<'PY'
import sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
with open(sys.argv[2], "w") as out:
    n = 0
    while n < 1_000_000:
        for l in lines:
            out.write(l.replace("/work/python/", "/work/python/r%d/" % (n // len(lines)), 1))
            n += 1
            if n == 1_000_000:
                break
PY
t0=$(now)
/usr/bin/time -f "%M" -o "$work/rss" "$cordon" policy suggest --from "$work/million.jsonl" --user cordon-wl \
  --workspace /home/cordon-wl/work/python > "$work/suggested.yaml"
t1=$(now)
printf '\nsuggest over %s records: %.2f s, peak RSS %s KiB, %s rules\n' "$(wc -l < "$work/million.jsonl")" \
  "$(echo "$t1 - $t0" | bc)" "$(cat "$work/rss")" "$(grep -c '^      - ' "$work/suggested.yaml")"
