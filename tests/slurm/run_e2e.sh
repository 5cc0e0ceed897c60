#!/usr/bin/env bash
# The test preset through workflow/profiles/slurm on a real one-node SLURM cluster.
#
#   tests/slurm/run_e2e.sh WORKDIR [--no-local-run] [TARGET...]
#
# As root on Debian/Ubuntu: installs slurmctld, slurmd, slurm-client and munge (apt),
# starts munged + slurmctld + slurmd on localhost (tests/slurm/cluster.sh; all their
# files in a temp dir), runs tests/config/test.yaml through
#   snakemake --workflow-profile workflow/profiles/slurm
# in WORKDIR/slurm and checks (tests/slurm/check_run.py) that every job went through
# sbatch and ran on SLURM.  Meanwhile it runs the same targets locally in WORKDIR/local and
# checks that the parquet tables equal the local run's; with --no-local-run the caller
# compares them with a local run of its own (tests/test_workflow.py: its run of the whole
# preset):  python tests/slurm/check_run.py tables WORKDIR/slurm LOCAL_WORKDIR
# Stops every daemon it started on exit.
# Exit status 77: this machine cannot run the test (not root, no apt-get, SLURM running).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(realpath -m "${1:?usage: tests/slurm/run_e2e.sh WORKDIR [--no-local-run] [TARGET...]}")
shift
LOCAL_RUN=1
if [ "${1:-}" = "--no-local-run" ]; then
    LOCAL_RUN=0
    shift
fi
PYTHON=${PYTHON:-python3}

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (installs packages, starts slurmctld/slurmd/munged)"; exit 77; }
command -v apt-get >/dev/null || { echo "SKIP: needs apt-get (Debian/Ubuntu) to install SLURM"; exit 77; }
# One cluster per machine: /etc/slurm/slurm.conf and the daemons' ports are global.
exec 9>/tmp/memloc-slurm-test.lock
flock 9

# shellcheck source=tests/slurm/cluster.sh
source "$ROOT/tests/slurm/cluster.sh"
start=$SECONDS
slurm_install
CLUSTER=$(mktemp -d /tmp/memloc-slurm.XXXXXX)
local_pid=""
cleanup() {
    local rc=$?
    [ -z "$local_pid" ] || kill "$local_pid" 2>/dev/null || true
    slurm_stop
    [ "$rc" -eq 0 ] || cp "$CLUSTER"/*.log "$WORK"/ 2>/dev/null || true
    rm -rf "$CLUSTER"
    exit "$rc"
}
trap cleanup EXIT
slurm_start "$CLUSTER"
echo "cluster up after $((SECONDS - start)) s"

mkdir -p "$WORK"
CPUS=$(nproc)
# Per-job memory cap: RealMemory / CPUs, so memory never keeps a CPU idle (a job asks
# for min(its mem_mb, the cap)).  Group jobs are capped at this, --cores and gpu=1.
MEM=$((SLURM_NODE_MEM / CPUS))
COMMON=(-s "$ROOT/Snakefile" --configfile "$ROOT/tests/config/test.yaml")

# The local reference run, in parallel (SLURM jobs spend most of their time waiting).
if [ "$LOCAL_RUN" -eq 1 ]; then
    "$PYTHON" -m snakemake "${COMMON[@]}" --directory "$WORK/local" --workflow-profile none \
        --cores "$CPUS" "$@" >"$WORK/local.log" 2>&1 &
    local_pid=$!
fi

# The workflow profile as a user would run it; site settings through its environment
# variables; only what a 1-node cluster without accounting needs on the command line.
MEMLOC_SLURM_PARTITION=test MEMLOC_SLURM_GPU_MODEL=fake \
    "$PYTHON" -m snakemake "${COMMON[@]}" --directory "$WORK/slurm" \
    --workflow-profile "$ROOT/workflow/profiles/slurm" \
    --cores "$CPUS" --jobs 8 --resources "mem_mb=$MEM" gpu=1 \
    --slurm-status-command squeue --slurm-keep-successful-logs \
    --slurm-init-seconds-before-status-checks 2 --seconds-between-status-checks 3 \
    "$@" >"$WORK/slurm.log" 2>&1 || { tail -50 "$WORK/slurm.log"; exit 1; }
echo "SLURM run done after $((SECONDS - start)) s"

cp "$CLUSTER/slurmctld.log" "$WORK/"
# while the cluster is up: `scontrol show job` still knows the jobs
"$PYTHON" "$ROOT/tests/slurm/check_run.py" submissions "$WORK/slurm" "$WORK/slurmctld.log" \
    "$ROOT/workflow/profiles/slurm/config.yaml" "$ROOT/tests/config/test.yaml"
if [ "$LOCAL_RUN" -eq 1 ]; then
    wait "$local_pid" || { local_pid=""; tail -50 "$WORK/local.log"; exit 1; }
    local_pid=""
    echo "local run done after $((SECONDS - start)) s"
    "$PYTHON" "$ROOT/tests/slurm/check_run.py" tables "$WORK/slurm" "$WORK/local" --same-targets
fi
echo "OK after $((SECONDS - start)) s"
