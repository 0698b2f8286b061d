#!/usr/bin/env bash
# The guard's one command: GUARD_WORKERS workers of GridSampler (seeded per GUARD_SEED_POLICY)
# share one study on GUARD_STORAGE, one after another as separate processes (the #5489
# pattern), then `audit` checks the study. Its exit status is the verdict: 0 every grid point
# evaluated once, 1 points lost, 2 bad input. The verdict also goes to $GITHUB_STEP_SUMMARY.
set -euo pipefail

read -r -a tool <<<"${GUARD_TOOL:-optuna-grid-repro}"
workers=${GUARD_WORKERS:-4}
policy=${GUARD_SEED_POLICY:-none}
storage=${GUARD_STORAGE:-}
scratch=${RUNNER_TEMP:-${TMPDIR:-/tmp}}
study="guard-${GITHUB_RUN_ID:-local}-${GITHUB_RUN_ATTEMPT:-0}-$$"
if [[ -z "$storage" ]]; then
  storage="sqlite:///$scratch/$study.db"
fi
shape=(--workers "$workers")
if [[ -n "${GUARD_SPACE:-}" ]]; then
  shape+=(--space "$GUARD_SPACE")
fi

case $storage in
  sqlite:*) kind=sqlite ;;
  postgres*) kind=postgresql ;;
  mysql* | mariadb*) kind=mysql ;;
  redis*) kind=redis ;;
  *) kind=journal ;;
esac
scenario=$("${tool[@]}" list --storage "$kind" --remedies none "${shape[@]}" | grep -m1 "^sequential-$policy-$kind-" || true)
if [[ -z "$scenario" ]]; then
  echo "guard: no scenario for seed policy '$policy' on $kind; use none, shared or per-worker" >&2
  exit 2
fi

for ((index = 0; index < workers; index++)); do
  "${tool[@]}" worker --storage "$storage" --study "$study" --scenario "$scenario" \
    --worker-index "$index" "${shape[@]}" >/dev/null
done

status=0
report=$("${tool[@]}" audit "$storage" --study "$study") || status=$?
echo "$report"
case $status in
  0) verdict="every grid point evaluated exactly once" ;;
  1) verdict="grid points lost" ;;
  *) verdict="could not check (exit $status)" ;;
esac
if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
  {
    echo "### GridSampler guard: $verdict"
    echo
    echo "Optuna $(python -c 'import optuna; print(optuna.__version__)' || echo '?'): scenario \`$scenario\`, study \`$study\` on $kind"
    echo
    echo '```'
    echo "$report"
    echo '```'
  } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
