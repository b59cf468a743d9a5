#!/bin/bash
# BOHB on one training dataset with a SLURM job array: task 0 runs the master (and the
# nameserver), every other task runs one worker. See README.md in this folder.
#
#   sbatch --array=0-8 offline_bohb/slurm/bohb_array.sh DATASET RUN_DIR [ITERATIONS]
#
#SBATCH --job-name=autodl-bohb
#SBATCH --cpus-per-task=1
#SBATCH --mem=8G
#SBATCH --time=24:00:00
#SBATCH --output=%x-%A_%a.out
set -euo pipefail

DATASET=${1:?usage: sbatch --array=0-N bohb_array.sh DATASET RUN_DIR [ITERATIONS]}
RUN_DIR=${2:?usage: sbatch --array=0-N bohb_array.sh DATASET RUN_DIR [ITERATIONS]}
ITERATIONS=${3:-16}
# The network interface the nodes reach each other on (loopback only reaches this node).
INTERFACE=${BOHB_INTERFACE:-eth0}
# One id for the whole array: the master, the nameserver and the workers meet under it.
RUN_ID=${BOHB_RUN_ID:-${SLURM_ARRAY_JOB_ID:-manual}}
AUTODL_META=${AUTODL_META:-autodl-meta}
export OMP_NUM_THREADS=1

mkdir -p "$RUN_DIR"
if [ "${SLURM_ARRAY_TASK_ID:-0}" = 0 ]; then
  exec "$AUTODL_META" bohb master --with-nameserver --shared-dir "$RUN_DIR" --run-id "$RUN_ID" \
       --interface "$INTERFACE" --dataset "$DATASET" --iterations "$ITERATIONS" \
       --min-workers 1 ${BOHB_MASTER_ARGS:-}
else
  exec "$AUTODL_META" bohb worker --shared-dir "$RUN_DIR" --run-id "$RUN_ID" --interface "$INTERFACE"
fi
