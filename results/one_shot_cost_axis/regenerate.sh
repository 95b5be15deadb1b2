#!/usr/bin/env bash
# Regenerate results/one_shot_cost_axis (issue 16, LaNAS §4.3 on one cost axis).
#   results/one_shot_cost_axis/regenerate.sh [TABLE_RUNS [ONE_SHOT_RUNS [DDAS_RUNS [SUPERNET_RUNS]]]]
# 1. the sample-based searches on the table (results/experiments/one_shot_cost_axis.toml: random,
#    evolution 50/10, LaNAS, REINFORCE x 2 oracles x 10 seeds x 1,000 cells; a few CPU-minutes,
#    resumable, finished runs are skipped) into TABLE_RUNS (default runs/one-shot-cost-axis);
# 2. analyse.py on those, the one-shot runs (nas-harness run results/experiments/nb201_table5_digits.toml,
#    default /work/nb201-table5-digits; results/experiments/ddas_fig32_digits.toml, default
#    /work/ddas-fig32-digits) and the searches through the supernet (results/experiments/supernet_search.toml,
#    default /work/supernet-search; the supernet's training CPU is read from its config.json in
#    $NAS_HARNESS_DATA, or from SUPERNET_CONFIG if set).
# Folders that do not exist are left out. On a shared machine run it under nice -n 10.
set -euo pipefail
cd "$(dirname "$0")/../.."
TABLE_RUNS=${1:-runs/one-shot-cost-axis}
ONE_SHOT=${2:-/work/nb201-table5-digits}
DDAS=${3:-/work/ddas-fig32-digits}
SUPERNET=${4:-/work/supernet-search}
nas-harness run results/experiments/one_shot_cost_axis.toml --out "$TABLE_RUNS" --quiet
folders=()
for f in "$ONE_SHOT" "$DDAS" "$SUPERNET" "$TABLE_RUNS"; do
  [ -f "$f/experiment.json" ] && folders+=("$f")
done
extra=()
[ -n "${SUPERNET_CONFIG:-}" ] && extra+=(--supernet "nb201-digits-cpu-e50-s0=$SUPERNET_CONFIG")
python results/one_shot_cost_axis/analyse.py "${folders[@]}" "${extra[@]}" --out results/one_shot_cost_axis
python results/one_shot_cost_axis/splice_readme.py
