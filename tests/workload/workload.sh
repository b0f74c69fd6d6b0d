#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The real-toolchain tier: runs one toolchain's everyday job (tests/workload/jobs/JOB.sh) as an
# agent under a shipped policy, as an unprivileged test user, with no network, and checks that
# the job succeeds and that the guard recorded no deny, kill or freeze (nor an audit), and that the
# DNS gateway refused no lookup (a name the policy does not name is a refusal too).
#
# Usage: sudo tests/workload/workload.sh --cordon BIN --job JOB [options]
#   --policy FILE        policy (default: policies/coding-agent.yaml)
#   --backend B          auto|lsm|fmod_ret|compat (default: auto)
#   --node-per-user      run Node and npm from a per-user install (~/.nvm/versions/node/...)
#   --without-rule TEXT  run under a copy of the policy without the rule lines containing TEXT,
#                        and expect the job to FAIL with a denial whose line contains --denied
#   --denied TEXT        what that denial must name (with --without-rule)
#   --mode audit         run in audit mode: nothing is refused, every would-be refusal is listed
#   --bare               run the job with no guard (for bench/workload.sh); no checks but success
#   --keep               keep the workspace and logs (printed) instead of removing them
#   --events-out FILE    copy the run's events file (JSON lines) here
# Environment: CORDON_WORKLOAD_USER (default cordon-wl), made with useradd if it is missing.
# Exit: 0 pass, 1 fail, 77 skipped (the toolchain is not installed; the reason is printed).
set -euo pipefail

die() { printf 'workload: FAIL: %s\n' "$*" >&2; exit 1; }
say() { printf 'workload: %s\n' "$*"; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cordon="" job="" policy="$top/policies/coding-agent.yaml" backend=auto
per_user_node=0 without="" denied="" bare=0 keep=0 mode="" events_out=
while [ $# -gt 0 ]; do
  case "$1" in
    --cordon) cordon=$2; shift 2 ;;
    --job) job=$2; shift 2 ;;
    --policy) policy=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --node-per-user) per_user_node=1; shift ;;
    --without-rule) without=$2; shift 2 ;;
    --denied) denied=$2; shift 2 ;;
    --bare) bare=1; shift ;;
    --mode) mode=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --events-out) events_out=$2; shift 2 ;;
    -h|--help) sed -n '3,20p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[ -n "$job" ] && [ -r "$here/jobs/$job.sh" ] || die "--job must name a file in $here/jobs"
[ "$bare" -eq 1 ] || [ -x "$cordon" ] || die "--cordon must name the cordon binary"
[ "$(id -u)" -eq 0 ] || die "run as root: the guard loads BPF programs and the job runs as a test user"
[ -z "$without" ] || [ -n "$denied" ] || die "--without-rule needs --denied"

# Each toolchain comes from scripts/bootstrap.sh; a machine without one skips, saying which.
declare -A needs=([npm]="node npm" [python]="python3" [rust]="cargo rustc" [go]="go"
                  [c]="cmake make cc c++" [git]="git")
for tool in ${needs[$job]:-}; do
  [ -x "/usr/bin/$tool" ] || { say "SKIP: /usr/bin/$tool is not installed (scripts/bootstrap.sh installs it)"; exit 77; }
done

user=${CORDON_WORKLOAD_USER:-cordon-wl}
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash --comment "cordon workload tests" "$user" \
    || die "cannot create the test user $user"
fi
home=$(getent passwd "$user" | cut -d: -f6)
[ -d "$home" ] || die "$user's home $home does not exist"
as_user() { runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
              PATH=/usr/local/bin:/usr/bin:/bin "$@"; }

# The job file, where the agent can read it; a fresh workspace under the user's home.
install -d -o "$user" -g "$user" "$home/jobs" "$home/work"
install -m 0644 -o "$user" -g "$user" "$here/jobs/$job.sh" "$home/jobs/$job.sh"
ws="$home/work/$job"
rm -rf "$ws" && install -d -o "$user" -g "$user" "$ws"
logdir=$(mktemp -d /tmp/cordon-workload.XXXXXX)
cleanup() { if [ "$keep" -eq 1 ]; then say "kept $ws and $logdir"; else rm -rf "$ws" "$logdir"; fi; }
trap cleanup EXIT

path_prefix=""
if [ "$per_user_node" -eq 1 ]; then
  # nvm's layout, from the same Node the system has: bin/node, lib/node_modules/npm, bin/npm.
  ver=$(/usr/bin/node --version)
  nvm="$home/.nvm/versions/node/$ver"
  if [ ! -x "$nvm/bin/node" ]; then
    install -d -o "$user" -g "$user" "$nvm/bin" "$nvm/lib/node_modules"
    install -m 0755 -o "$user" -g "$user" /usr/bin/node "$nvm/bin/node"
    # npm's own directory, wherever the system keeps it (NodeSource: /usr/lib/node_modules/npm,
    # Debian: /usr/share/nodejs/npm)
    npm_dir=$(dirname "$(dirname "$(readlink -f /usr/bin/npm)")")
    cp -a "$npm_dir" "$nvm/lib/node_modules/npm"
    ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$nvm/bin/npm"
    chown -R "$user:$user" "$home/.nvm"
  fi
  path_prefix="$nvm/bin:"
fi

say "preparing $job (unguarded, as $user)"
as_user PATH="${path_prefix}/usr/local/bin:/usr/bin:/bin" bash -euo pipefail -c \
  ". '$home/jobs/$job.sh'; prepare" >"$logdir/prepare.log" 2>&1 \
  || { cat "$logdir/prepare.log"; die "preparing $job failed (not the guard: it was not running)"; }

# The job's own time is printed (job-ms: MS), so that bench/workload.sh can compare the job
# bare and guarded apart from cordon's start-up.
script=". '$home/jobs/$job.sh'; export PATH='${path_prefix}'\"\$PATH\"; t0=\$(date +%s%N); run; echo \"job-ms: \$(( (\$(date +%s%N) - t0) / 1000000 ))\""
if [ "$bare" -eq 1 ]; then
  (cd "$ws" && as_user bash -euxo pipefail -c "$script") >"$logdir/job.log" 2>&1 \
    || { cat "$logdir/job.log"; die "$job failed unguarded"; }
  grep '^job-ms: ' "$logdir/job.log" || true
  exit 0
fi

run_policy=$policy
if [ -n "$without" ]; then
  run_policy="$logdir/policy.yaml"
  grep -vF -- "$without" "$policy" > "$run_policy" || true
  cmp -s "$policy" "$run_policy" && die "no rule of $policy contains '$without'"
  chmod 0644 "$run_policy"
fi

say "running $job under $(basename "$policy")${without:+ without the rule '$without'} (backend $backend)"
set +e
"$cordon" run --policy "$run_policy" --user "$user" --workspace "$ws" --backend "$backend" ${mode:+--mode "$mode"} \
  --events "$logdir/events.jsonl" -- bash -euxo pipefail -c "$script" >"$logdir/job.log" 2>&1
status=$?
set -e
[ -z "$events_out" ] || cp "$logdir/events.jsonl" "$events_out"
# Every record the guard wrote that is not an allow: a deny, kill, freeze or audit.
grep -v '"activity_name":"Allow"\|"verdict":"allow"' "$logdir/events.jsonl" 2>/dev/null \
  | grep -E '"verdict":"(deny|kill|freeze|audit)"|"dns":true.*"outcome":"refused"' \
  >"$logdir/refusals.jsonl" || true
# And every such line cordon printed.
grep -E '^cordon(\[[0-9a-f]+\])?: (deny|kill|freeze|audit|dns refused) ' "$logdir/job.log" >"$logdir/refusal-lines.txt" || true

if [ "$per_user_node" -eq 1 ] && ! grep -q "^node: $nvm/bin/node, npm: $nvm/bin/npm" "$logdir/job.log"; then
  cat "$logdir/job.log"; die "the job did not run the per-user Node in $nvm"
fi
if [ -n "$without" ]; then
  if [ "$status" -eq 0 ]; then
    cat "$logdir/job.log"; die "$job passed without the rule '$without': the rule is not needed or not tested"
  fi
  grep -qF -- "$denied" "$logdir/refusal-lines.txt" || {
    cat "$logdir/job.log"; die "$job failed (status $status) but no denial line names '$denied'"; }
  say "PASS: without '$without', $job fails (status $status) with: $(grep -F -- "$denied" "$logdir/refusal-lines.txt" | head -1)"
  exit 0
fi

if [ "$status" -ne 0 ] || [ -s "$logdir/refusals.jsonl" ] || [ -s "$logdir/refusal-lines.txt" ]; then
  cat "$logdir/job.log"
  echo "--- records that are not allows:"; cat "$logdir/refusals.jsonl"
  die "$job under $(basename "$policy"): status $status, $(wc -l <"$logdir/refusals.jsonl") refusal records, $(wc -l <"$logdir/refusal-lines.txt") refusal lines (want 0, 0, 0)"
fi
grep '^job-ms: ' "$logdir/job.log" || true
say "PASS: $job under $(basename "$policy") on $(sed -n 's/.* on the \([a-z_]*\) backend.*/\1/p' "$logdir/job.log" | head -1): status 0, no refusal"
