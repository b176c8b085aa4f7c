#!/usr/bin/env bash
# The steps of imaginebuild's GitHub Action (action.yml at the repository root), kept in
# one script so the action and its test run the same lines.
#
#   github-action.sh run      plan, run the command, write the step summary, the comment
#                             body and the step outputs
#   github-action.sh report   write the HTML report for the artifact upload
#
# Inputs come as the runner passes them to a composite action's steps: INPUT_COMMAND,
# INPUT_REMOTE, INPUT_MAX_COST, INPUT_WORKING_DIRECTORY, INPUT_REPORT_DIR; results go to
# the files named by GITHUB_STEP_SUMMARY and GITHUB_OUTPUT; work files to RUNNER_TEMP.
# IMAGINEBUILD_PYTHON names the interpreter imaginebuild is installed in (default: python).
set -euo pipefail

python="${IMAGINEBUILD_PYTHON:-python}"
work="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/imaginebuild-action"
mkdir -p "$work"
cd "${INPUT_WORKING_DIRECTORY:-.}"

imaginebuild() {
  # The action writes its own summary; the command's own one would repeat it.
  GITHUB_STEP_SUMMARY="" "$python" -m imaginebuild "$@"
}

output() {
  echo "$1=$2" >> "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
}

step_run() {
  local command="${INPUT_COMMAND:-plan}"
  if [ -n "${INPUT_REMOTE:-}" ]; then
    export IMAGINEBUILD_REMOTE="$INPUT_REMOTE"
  fi
  local -a args
  read -r -a args <<< "$command"
  if [ "${args[0]:-}" = run ] && [ -n "${INPUT_MAX_COST:-}" ]; then
    args+=(--max-cost "$INPUT_MAX_COST")
  fi
  local code=0
  if [ "${args[0]:-}" = plan ]; then  # the plan is the command (with its options: --check…)
    imaginebuild --json "${args[@]}" > "$work/plan.json" || code=$?
    cp "$work/plan.json" "$work/result.json"
  else  # what the command will call, and its cost, before anything is called
    imaginebuild --json plan > "$work/plan.json" || true
    imaginebuild --json "${args[@]}" > "$work/result.json" || code=$?
  fi
  "$python" -m imaginebuild.cli.github --plan "$work/plan.json" --result "$work/result.json" \
    --command "${args[*]}" > "$work/comment.md"
  cat "$work/comment.md" >> "${GITHUB_STEP_SUMMARY:?GITHUB_STEP_SUMMARY is not set}"
  output exit-code "$code"
  output plan-json "$work/plan.json"
  output result-json "$work/result.json"
  output comment-file "$work/comment.md"
  output estimate-usd "$("$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("billable_usd", d.get("estimate_usd", "")))' "$work/plan.json")"
  return "$code"
}

step_report() {
  local dir="${INPUT_REPORT_DIR:-imaginebuild-report}"
  imaginebuild report -o "$dir"
  output report-dir "$(cd "$dir" && pwd)"
}

case "${1:-}" in
  run) step_run ;;
  report) step_report ;;
  *) echo "usage: github-action.sh run|report" >&2; exit 2 ;;
esac
