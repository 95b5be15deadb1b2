#!/usr/bin/env bash
# Regenerate results/supernet_rank (issue 15): train the six cpu-preset NB201 supernets on digits
# (3 seeds x the two batch-norm settings, snapshots for the curve over epochs; resumable, a
# finished one is skipped) and rank them against the NB201-on-digits ground truth.
#   results/supernet_rank/regenerate.sh [TRUTH [OUT [extra supernet-rank options]]]
# TRUTH: the table oracle nb201-digits (default), a table folder, or a collection folder (read as far as
# it has got). On a shared machine run it under nice -n 10. Scoring costs about 60-100 CPU-ms a class per
# supernet and epoch: all 6,466 classes at the last epoch and 1,000 on the curve's five earlier epochs
# is about 6 x (6,466 + 5 x 1,000) x 0.07 s = 80 CPU-minutes; cached per oracle checksum, so a
# rerun scores only what is new.
set -euo pipefail
cd "$(dirname "$0")/../.."
TRUTH=${1:-nb201-digits}
OUT=${2:-results/supernet_rank}
shift $(( $# > 2 ? 2 : $# )) || true
names=()
for bn in nb201 full; do
  for seed in 0 1 2; do
    nas-harness supernet train nb201 --dataset digits --preset cpu --seed "$seed" --bn "$bn" \
      --snapshots 1,2,5,10,25 --no-progress
    suffix=$([ "$bn" = full ] && echo "-affine1-track1" || true)
    names+=("nb201-digits-cpu-e50-s${seed}${suffix}")
  done
done
nas-harness supernet rank "${names[@]}" --truth "$TRUTH" --out "$OUT" --cells 1000 "$@"
