#!/usr/bin/env bash
# Regenerate results/supernet_rank (issue 15): train the six cpu-preset NB201 supernets on digits
# (3 seeds x the two batch-norm settings, snapshots for the curve over epochs; resumable, a
# finished one is skipped) and rank them against the NB201-on-digits ground truth:
#   - NB201's search batch norm (`nb201`: no affine, no running statistics), every one of the
#     6,466 classes at the last epoch, a uniform sample of 500 on the curve over epochs -> OUT;
#   - both on (`full`), a uniform sample of 3,000 classes at the last epoch and the same 500 on
#     the curve -> OUT/bn-full (a sample: the CPU of one session, see README.md).
#   results/supernet_rank/regenerate.sh [TRUTH [OUT [extra supernet-rank options]]]
# TRUTH: the table oracle nb201-digits (default), a table folder, or a collection folder (read as far as
# it has got). On a shared machine run it under nice -n 10. Scoring costs about 60-120 CPU-ms a class per
# supernet and epoch: 3 x (6,466 + 5 x 500) + 3 x (3,000 + 5 x 500) classes, about 43,400 scorings,
# is 45-85 CPU-minutes; cached per oracle checksum in $NAS_HARNESS_DATA/supernet-rank-cache, so a
# rerun scores only what is new (the two commands can run at once, one core each).
set -euo pipefail
cd "$(dirname "$0")/../.."
TRUTH=${1:-nb201-digits}
OUT=${2:-results/supernet_rank}
shift $(( $# > 2 ? 2 : $# )) || true
for bn in nb201 full; do
  for seed in 0 1 2; do
    nas-harness supernet train nb201 --dataset digits --preset cpu --seed "$seed" --bn "$bn" \
      --snapshots 1,2,5,10,25 --no-progress
  done
done
nas-harness supernet rank nb201-digits-cpu-e50-s{0,1,2} --truth "$TRUTH" --out "$OUT" --cells 500 "$@"
nas-harness supernet rank nb201-digits-cpu-e50-s{0,1,2}-affine1-track1 --truth "$TRUTH" --out "$OUT/bn-full" \
  --cells 500 --final-cells 3000 "$@"
