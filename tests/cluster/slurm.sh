#!/usr/bin/env bash
# A real single-node SLURM on this machine, for the cluster tests (tests/cluster/).
#
#   slurm.sh install        install munge, slurmctld, slurmd, slurmdbd and MariaDB with apt (root)
#   slurm.sh start [DIR]    start them with a generated configuration under DIR; prints SLURM_CONF
#   slurm.sh stop  [DIR]    stop every daemon started from DIR and remove DIR
#
# It runs beside no other SLURM: `start` refuses when a SLURM daemon runs or its ports or
# /etc/slurm/slurm.conf are taken, and uses ports of its own (16817-16819, MariaDB 13307).
#
# Job status: the profile asks squeue (see profiles/slurm/config.yaml for why), but
# slurmdbd with MariaDB runs too, as on real clusters: `sacct` is how the tests see which jobs
# went through SLURM, and the plugin falls back to it when MinJobAge is short. `start` submits
# a probe job and checks that both squeue and sacct report it COMPLETED; without that the
# plugin's status polling would wait forever without a word.
#
# Everything lives under DIR (default /tmp/nclayers-slurm): configuration, state, spool, logs,
# the MariaDB data directory; a marker file there lets `stop` remove only what `start` made.
# The daemons run as root. /etc/slurm/slurm.conf becomes a link to DIR/slurm.conf while SLURM
# runs: the plugin's job step deletes SLURM_CONF (with most SLURM_* variables) before it calls
# srun inside the job, so srun finds the configuration only at its compiled-in path, as on a
# real cluster.
set -euo pipefail

DIR=${2:-${NCLAYERS_SLURM_DIR:-/tmp/nclayers-slurm}}
PACKAGES="munge slurmctld slurmd slurm-client slurmdbd mariadb-server mariadb-client"
CTLD_PORT=16817 SLURMD_PORT=16818 DBD_PORT=16819 DB_PORT=13307
MARKER=.nclayers-slurm
CLUSTER=nclayers
ACCOUNTS="nclayers other"        # `other` and partition `alt` exist for the env-var tests
STARTUP_TIMEOUT=60
ETC_CONF=/etc/slurm/slurm.conf

die() { echo "slurm.sh: $*" >&2; exit 1; }
log_tails() {
  for f in "$DIR"/log/*.log; do
    if [ -f "$f" ]; then echo "--- $f"; tail -n 20 "$f"; fi
  done >&2
  return 0
}
ours() { [ -f "$1/$MARKER" ]; }   # a directory made by `start`
empty() { [ -d "$1" ] && [ -z "$(ls -A "$1")" ]; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log_tails; die "timed out waiting for $what"; fi
    sleep 0.5
  done
}

install() {
  local missing=""
  for cmd in munged slurmctld slurmd sbatch slurmdbd mariadbd mariadb-install-db; do
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
  done
  [ -z "$missing" ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing:$missing. As root: apt-get install $PACKAGES"
  command -v apt-get >/dev/null || die "missing:$missing, and there is no apt-get to install it"
  echo "Installing SLURM and MariaDB ($PACKAGES) with apt-get." >&2
  apt-get update -qq
  # policy-rc.d keeps the packages from starting their system daemons; ours run from DIR.
  local policy=/usr/sbin/policy-rc.d
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy
    trap "rm -f $policy" EXIT   # also when apt fails: a stray policy blocks every service
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
}

write_configs() {
  local host node
  host=$(hostname -s)
  # slurmd -C prints this machine's node line (CPUs, sockets, cores, RealMemory).
  node=$(slurmd -C | head -n 1)
  mkdir -p "$DIR"/{state,spool,log,run}
  touch "$DIR/$MARKER"
  cat >"$DIR/slurm.conf" <<CONF
ClusterName=$CLUSTER
# Loopback addresses: no dependence on this machine's name resolving.
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups: containers and CI machines rarely delegate them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
# Per CPU, not per core: on a machine with hyperthreads a 1-CPU job still gets one CPU.
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
ReturnToService=2
# squeue remembers finished jobs this long. The profile's squeue status needs more than the
# plugin's longest pause between queries, 180 s; 300 s is SLURM's default.
MinJobAge=300
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
# The plugin writes the rule and its wildcards into the job comment; keep it for sacct.
AccountingStoreFlags=job_comment
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=alt Nodes=ALL MaxTime=INFINITE State=UP
CONF
  cat >"$DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$DIR/slurmdbd.conf"   # slurmdbd refuses a readable password file
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi   # one is running
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- munged
  wait_for 10 "munged" sh -c 'munge -n | unmunge'
  cp /run/munge/munged.pid "$DIR/run/munged.pid"   # ours, so `stop` ends it too
}

start_mariadb() {
  local sock="$DIR/run/mysql.sock"
  mariadb-install-db --user=root --datadir="$DIR/mysql" --auth-root-authentication-method=socket \
    --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1
  mariadbd --user=root --datadir="$DIR/mysql" --socket="$sock" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$DIR/run/mariadbd.pid" \
    --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=32M \
    </dev/null >>"$DIR/log/mariadb.log" 2>&1 &   # detached: a caller may wait on our stdout
  wait_for $STARTUP_TIMEOUT "MariaDB on port $DB_PORT" mariadb --socket="$sock" -e 'SELECT 1'
  mariadb --socket="$sock" <<SQL
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

probe_job() {  # a job through sbatch; squeue (the profile's status command) and sacct must
  local id state    # both report it COMPLETED, or the plugin's status polling would wait forever
  id=$(sbatch --parsable --wrap true --output=/dev/null) || { log_tails; die "sbatch failed"; }
  for query in "squeue -h --states=all -o %T -j $id" "sacct -X -n -P -o State -j $id"; do
    for _ in $(seq 120); do
      state=$($query 2>/dev/null | head -n 1 || true)
      [ "$state" = COMPLETED ] && continue 2
      sleep 0.5
    done
    log_tails
    die "'$query' does not report probe job $id as COMPLETED (got '${state:-nothing}'): \
the workflow's job status queries would never see its jobs finish"
  done
}

refuse_other_slurm() {
  local daemon port
  for daemon in slurmctld slurmd slurmdbd; do
    if pgrep -x $daemon >/dev/null; then die "a $daemon runs here already: stop it first"; fi
  done
  for port in $CTLD_PORT $SLURMD_PORT $DBD_PORT $DB_PORT; do
    if port_taken $port; then die "port $port is taken; free it first"; fi
  done
  if [ -e $ETC_CONF ] || [ -L $ETC_CONF ]; then
    local target; target=$(readlink $ETC_CONF || true)
    # Ours, left by a run that died (its directory may be gone): replace it. Anything else: no.
    if [ -z "$target" ] || { [ -d "$(dirname "$target")" ] && ! ours "$(dirname "$target")"; }; then
      die "$ETC_CONF belongs to another SLURM on this machine"
    fi
  fi
  if [ -e "$DIR" ] && ! ours "$DIR" && ! empty "$DIR"; then
    die "$DIR exists and was not made by $0: give another directory"
  fi
}

start() {
  [ "$(id -u)" -eq 0 ] || die "starting SLURM needs root"
  for cmd in munged slurmctld slurmd sbatch slurmdbd mariadbd; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is missing: run '$0 install' as root first"
  done
  refuse_other_slurm
  rm -rf "$DIR"
  # From here on, a failure stops whatever was started.
  trap 'echo "slurm.sh: start failed; stopping what it started" >&2; stop' EXIT
  write_configs
  mkdir -p "$(dirname $ETC_CONF)" && ln -sfn "$DIR/slurm.conf" $ETC_CONF
  export SLURM_CONF="$DIR/slurm.conf"
  start_munge
  start_mariadb
  slurmdbd
  wait_for $STARTUP_TIMEOUT "slurmdbd" sacctmgr -n list cluster
  sacctmgr -i add cluster $CLUSTER >/dev/null
  for account in $ACCOUNTS; do sacctmgr -i add account "$account" >/dev/null; done
  sacctmgr -i add user root account="${ACCOUNTS// /,}" defaultaccount=nclayers >/dev/null
  slurmctld
  slurmd
  wait_for $STARTUP_TIMEOUT "the node to become idle" sh -c 'sinfo -h -o %t | grep -q idle'
  probe_job
  trap - EXIT
  echo "SLURM_CONF=$SLURM_CONF"
}

stop() {
  if [ ! -e "$DIR" ] || empty "$DIR"; then return 0; fi
  ours "$DIR" || die "$DIR was not made by $0: not touching it"
  export SLURM_CONF="$DIR/slurm.conf"
  if [ -f "$DIR/run/slurmctld.pid" ] && scancel --user=root 2>/dev/null; then
    # Let slurmd end the jobs' processes before it goes (linuxproc tracks them, not cgroups).
    for _ in $(seq 60); do [ -z "$(squeue -h 2>/dev/null || true)" ] && break; sleep 0.5; done
  fi
  for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
    local pidfile="$DIR/run/$daemon.pid"
    [ -f "$pidfile" ] || continue
    local pid; pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # Job steps outlive a slurmd that was killed; `start` made sure no other SLURM runs here.
  pkill -x slurmstepd 2>/dev/null && sleep 1 && pkill -9 -x slurmstepd 2>/dev/null || true
  if [ "$(readlink $ETC_CONF 2>/dev/null)" = "$DIR/slurm.conf" ]; then rm -f $ETC_CONF; fi
  rm -rf "$DIR"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install | start [DIR] | stop [DIR]" >&2; exit 2 ;;
esac
