#!/usr/bin/env bash
# Runs the MLPNAS §5.2 experiments seed by seed (the runner orders an experiment's runs cell by
# cell; growing --seeds one at a time keeps every cell at the same number of seeds whenever the
# collection is stopped). Resumable: a finished run is never redone.
#   results/mlpnas_52/run.sh DATASET MAX_SEEDS [PART...]
#   (PART: "" oneshot extended extended_baselines; the last two write runs/mlpnas-DATASET-extended,
#   a folder of their own, since random search and evolution run there with 450 networks)
# e.g. results/mlpnas_52/run.sh digits 10 "" oneshot   (Tables 1-3 on digits, up to 10 seeds)
#      results/mlpnas_52/run.sh digits 10 extended extended_baselines   (Table 4 and its baselines)
# SEED_START=5 OUT=runs/mlpnas-digits-b results/mlpnas_52/run.sh digits 1 "" oneshot
#   runs seeds from 5 into another folder, beside a first stream (the runner allows one writer
#   per folder); results/mlpnas_52/merge.py then copies its runs into the first folder.
set -u
ds=$1; max=$2; shift 2
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=("" oneshot)
extra=()
[ -n "${SEED_START:-}" ] && extra+=(--seed-start "$SEED_START")
[ -n "${OUT:-}" ] && extra+=(--out "$OUT")
cd "$(dirname "$0")/../.."
for n in $(seq 1 "$max"); do
  for p in "${parts[@]}"; do
    toml=results/experiments/mlpnas_${ds}${p:+_$p}.toml
    nice -n 10 nas-harness run "$toml" --seeds "$n" "${extra[@]}" --quiet || echo "run $toml --seeds $n: exit $?"
  done
  echo "$(date -u +%H:%M:%S) $ds: $n seed(s) done"
done
