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
now() { date +%s%N; }
sub_s() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (a - b) / 1e9}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
# job: the job's commands alone (timed inside, as the agent); whole: the whole command, with
# the unguarded fixture preparation and, guarded, cordon run's start-up (loading the programs).
echo "| job | job bare (s) | job guarded (s) | job ratio | whole bare (s) | whole guarded (s) | whole ratio | pairs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
b=/tmp/bench-wl.$$
for job in $jobs; do
  : > $b.jb; : > $b.jg; : > $b.wb; : > $b.wg
  for _ in $(seq "$pairs"); do
    t0=$(now); "$wl" --cordon "$cordon" --job "$job" --bare | sed -n 's/^job-ms: //p' | awk '{print $1/1000}' >> $b.jb; t1=$(now)
    "$wl" --cordon "$cordon" --job "$job" | sed -n 's/^job-ms: //p' | awk '{print $1/1000}' >> $b.jg; t2=$(now)
    sub_s "$t1" "$t0" >> $b.wb; echo >> $b.wb
    sub_s "$t2" "$t1" >> $b.wg; echo >> $b.wg
  done
  jb=$(median < $b.jb); jg=$(median < $b.jg); wb=$(median < $b.wb); wg=$(median < $b.wg)
  printf '| %s | %.2f | %.2f | %s | %.2f | %.2f | %s | %s |\n' "$job" "$jb" "$jg" \
    "$(div "$jg" "$jb")" "$wb" "$wg" "$(div "$wg" "$wb")" "$pairs"
done
rm -f $b.*

# suggest over 1,000,000 records: a real run's records, repeated with the paths varied.
work=$(mktemp -d /tmp/cordon-bench-suggest.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
sed 's/^  mode: enforce$/  mode: audit\n  trace: all/' "$top/policies/coding-agent.yaml" > "$work/learning.yaml"
"$wl" --cordon "$cordon" --job python --policy "$work/learning.yaml" --events-out "$work/run.jsonl" >/dev/null
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
printf '\nsuggest over %s records: %s s, peak RSS %s KiB, %s rules\n' "$(wc -l < "$work/million.jsonl")" \
  "$(sub_s "$t1" "$t0")" "$(cat "$work/rss")" "$(grep -c '^      - ' "$work/suggested.yaml")"
