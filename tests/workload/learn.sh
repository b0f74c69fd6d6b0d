#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `cordon policy suggest` and `cordon policy test` on the records of real runs: the python job
# runs under coding-agent with `trace: all` in audit mode (every access recorded, nothing
# refused); the policy suggested from those records is then enforced on the same job, which
# must pass with zero refusals; and `policy test` of that policy less one rule must name exactly
# the accesses that rule covered (and exit 1).
#
# Usage: sudo tests/workload/learn.sh --cordon BIN
set -euo pipefail
die() { printf 'learn: FAIL: %s\n' "$*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
[ "${1:-}" = --cordon ] && [ -x "${2:-}" ] || die "usage: $0 --cordon BIN"
cordon=$2
[ -x /usr/bin/python3 ] || { echo "learn: SKIP: /usr/bin/python3 is not installed"; exit 77; }
user=${CORDON_WORKLOAD_USER:-cordon-wl}
work=$(mktemp -d /tmp/cordon-learn.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"

# 1. The learning run: every access recorded, nothing refused.
sed 's/^  mode: enforce$/  mode: audit\n  trace: all/' "$top/policies/coding-agent.yaml" > "$work/learning.yaml"
grep -q '^  trace: all$' "$work/learning.yaml" || die "could not make the learning policy"
"$here/workload.sh" --cordon "$cordon" --job python --policy "$work/learning.yaml" \
  --events-out "$work/run.jsonl" >/dev/null || die "the learning run failed"
home=$(getent passwd "$user" | cut -d: -f6)
ctx=(--user "$user" --workspace "$home/work/python")
echo "learn: $(wc -l <"$work/run.jsonl") records from the learning run"

# 2. The suggested policy, enforced on the same job: zero refusals.
"$cordon" policy suggest --from "$work/run.jsonl" "${ctx[@]}" --name python-job \
  -o "$work/suggested.yaml" || die "suggest failed"
chmod 0644 "$work/suggested.yaml"
grep -q '^    default: deny$' "$work/suggested.yaml" || die "the suggested policy has no default deny"
"$here/workload.sh" --cordon "$cordon" --job python --policy "$work/suggested.yaml" \
  || { cat "$work/suggested.yaml"; die "the job fails under the policy suggested from its own run"; }

# 3. The same policy less one rule: `policy test` names exactly what that rule covered.
rule=$(grep -n 'greet-1.0.0-py3-none-any.whl' "$work/suggested.yaml" | head -1)
[ -n "$rule" ] || { cat "$work/suggested.yaml"; die "no rule for the wheel file in the suggestion"; }
count=$(sed -n 's/.*# \([0-9]*\) reads\?$/\1/p' <<<"$rule")
[ -n "$count" ] || die "the wheel rule has no count: $rule"
sed "${rule%%:*}d" "$work/suggested.yaml" > "$work/less.yaml"
set +e
"$cordon" policy test "$work/less.yaml" --from "$work/run.jsonl" "${ctx[@]}" > "$work/test.txt"
rc=$?
set -e
cat "$work/test.txt"
[ "$rc" -eq 1 ] || die "policy test exited $rc, want 1 (an access would be newly denied)"
denied=$(grep -c '^  DENIED' "$work/test.txt" || true)
[ "$denied" -eq 1 ] || die "policy test lists $denied newly denied accesses, want exactly 1"
grep -Eq "^  DENIED +$count  open read $home/fixtures/python/wheels/greet-1.0.0-py3-none-any.whl: allow -> deny \(default\)$" "$work/test.txt" \
  || die "policy test does not name the $count reads of the wheel that the removed rule covered"
"$cordon" policy test "$work/suggested.yaml" --from "$work/run.jsonl" "${ctx[@]}" >/dev/null \
  || die "policy test of the whole suggested policy reports a newly denied access"
echo "learn: PASS: suggested from a real run, enforced with zero refusals; test names the removed rule's $count reads"
