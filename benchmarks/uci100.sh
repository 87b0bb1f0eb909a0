#!/usr/bin/env bash
# The README's UCI benchmark at the reference protocol (100x epochs, 10,000 MC samples), one
# output folder per data set, resumable: rerun the same command after an interruption and only
# the unfinished stacks run again. Long: run it in the background,
#
#   nohup benchmarks/uci100.sh ../shared/data/uci results/uci100 > uci100.log 2>&1 &
#
# Arguments: DATA_ROOT (the folder of UCI data sets) OUT_ROOT [METHODS] [SPLITS]
# METHODS defaults to MC dropout and its challengers; SPLITS to all (e.g. 0,1,2 for a subset).
# The methods of a data set run as one command, so a method and its +tau twin share their
# networks (one training, two scorings).
# STACK=6 (environment) caps the splits per stacked run: the unit of resume (default: all).
# DATASETS="yacht energy" (environment) runs only those data sets (default: all eight).
# Measured on kin8nm, same code: 376 s per split in 6-split stacks, 667 s in 3-split stacks.
# Then: python benchmarks/uci_table.py --results OUT_ROOT --data DATA_ROOT
set -euo pipefail
DATA=${1:?usage: uci100.sh DATA_ROOT OUT_ROOT [METHODS] [SPLITS]}
OUT=${2:?usage: uci100.sh DATA_ROOT OUT_ROOT [METHODS] [SPLITS]}
METHODS=${3:-bernoulli-mc,bernoulli-marginal_map,gaussian-mc}
SPLITS=${4:-}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# small sets first: they finish in minutes; protein takes hours per method
ALL="yacht bostonHousing energy wine-quality-red kin8nm power-plant naval-propulsion-plant
     protein-tertiary-structure"
for d in ${DATASETS:-$ALL}; do
  [ -d "$DATA/$d" ] || { echo "skip $d: not in $DATA"; continue; }
  echo "== $d $METHODS $(date -u +%FT%TZ)"
  "$PY" -m shrinkdrop uci --data "$DATA/$d" --out "$OUT/$d" --methods "$METHODS" --no-progress \
    ${SPLITS:+--splits "$SPLITS"} ${STACK:+--stack-splits "$STACK"}
done
"$PY" "$(dirname "$0")/uci_table.py" --results "$OUT" --data "$DATA"
