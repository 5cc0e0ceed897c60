# A one-node SLURM cluster on localhost, for tests (sourced by tests/slurm/run_e2e.sh).
#
#   slurm_install        apt-get install slurmctld slurmd slurm-client munge (if missing)
#   slurm_start DIR      munged + slurmctld + slurmd with every file under DIR;
#                        /etc/slurm/{slurm,gres}.conf become symlinks into DIR
#   slurm_stop           stops the daemons slurm_start started, restores /etc/slurm
#
# Needs root on Debian/Ubuntu without an init system: the daemons are started by hand.
# Two fake GPUs (gres gpu:fake:2 backed by empty files) let `gpu: 1` jobs run.
# Why each setting: slurm.conf must be at /etc/slurm/slurm.conf because the executor
# plugin's job step drops SLURM_CONF; without accounting (no slurmdbd) proctrack/task/
# jobacct plugins are the ones that need no cgroups or database.

SLURM_DIR=""
SLURM_ETC_BACKUP=""
SLURM_NODE_MEM=0 # MB of the node (RealMemory), set by slurm_start

slurm_install() {
    local need=()
    command -v slurmctld >/dev/null || need+=(slurmctld)
    command -v slurmd >/dev/null || need+=(slurmd)
    command -v sbatch >/dev/null || need+=(slurm-client)
    command -v munged >/dev/null || need+=(munge)
    [ ${#need[@]} -eq 0 ] && return 0
    echo "installing ${need[*]}"
    # No init system: keep the packages' postinst from starting their own daemons.
    local policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
}

_slurm_conf() {
    local dir=$1 host=$2 cpus=$3 mem=$4
    cat <<EOF
ClusterName=memloc-test
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
# Keep finished jobs in slurmctld's memory (squeue/scontrol) for the checks after the run.
MinJobAge=3600
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:fake:2 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

slurm_start() {
    SLURM_DIR=$1
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10))
    SLURM_NODE_MEM=$mem
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        echo "SKIP: a slurmctld or slurmd is already running on this machine" >&2
        return 77
    fi
    mkdir -p "$SLURM_DIR"/{munge,state,spool}
    chmod 755 "$SLURM_DIR"

    # munged as the munge user, everything in $SLURM_DIR/munge.
    chown munge:munge "$SLURM_DIR/munge"
    chmod 700 "$SLURM_DIR/munge"
    dd if=/dev/urandom of="$SLURM_DIR/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$SLURM_DIR/munge/munge.key"
    chmod 400 "$SLURM_DIR/munge/munge.key"
    runuser -u munge -- munged --force \
        --key-file="$SLURM_DIR/munge/munge.key" --socket="$SLURM_DIR/munge/munge.socket" \
        --pid-file="$SLURM_DIR/munge/munged.pid" --log-file="$SLURM_DIR/munge/munged.log" \
        --seed-file="$SLURM_DIR/munge/munged.seed"

    # slurm.conf and gres.conf: in $SLURM_DIR, linked from /etc/slurm.
    _slurm_conf "$SLURM_DIR" "$host" "$cpus" "$mem" >"$SLURM_DIR/slurm.conf"
    touch "$SLURM_DIR/gpu0" "$SLURM_DIR/gpu1"
    printf 'AutoDetect=off\nName=gpu Type=fake File=%s/gpu[0-1]\n' "$SLURM_DIR" >"$SLURM_DIR/gres.conf"
    mkdir -p /etc/slurm
    if [ -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; then
        SLURM_ETC_BACKUP="$SLURM_DIR/etc-backup"
        mkdir -p "$SLURM_ETC_BACKUP"
        cp -a /etc/slurm/. "$SLURM_ETC_BACKUP/"
    fi
    ln -sf "$SLURM_DIR/slurm.conf" /etc/slurm/slurm.conf
    ln -sf "$SLURM_DIR/gres.conf" /etc/slurm/gres.conf

    slurmctld
    slurmd
    # Wait until the node takes jobs.
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %T 2>/dev/null || true)
        [ "$state" = idle ] && break
        sleep 1
    done
    if [ "$state" != idle ]; then
        echo "node state after 60 s: '$state'" >&2
        tail -20 "$SLURM_DIR/slurmctld.log" "$SLURM_DIR/slurmd.log" >&2 || true
        return 1
    fi
    echo "SLURM up: node $host, $cpus CPUs, ${mem} MB, gres gpu:fake:2, partition test"
}

_stop_pidfile() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
}

slurm_stop() {
    [ -n "$SLURM_DIR" ] || return 0
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    _stop_pidfile "$SLURM_DIR/slurmd.pid"
    _stop_pidfile "$SLURM_DIR/slurmctld.pid"
    _stop_pidfile "$SLURM_DIR/munge/munged.pid"
    rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf
    if [ -n "$SLURM_ETC_BACKUP" ]; then
        cp -a "$SLURM_ETC_BACKUP/." /etc/slurm/
    fi
    SLURM_DIR=""
}
