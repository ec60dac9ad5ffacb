#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (controller and daemon on
# localhost), to try launch/slurm_multi_worker.sbatch without a real cluster.
#
#   launch/slurm/local_cluster.sh install        # apt-get install slurm-wlm munge (root)
#   launch/slurm/local_cluster.sh start          # prints the line to source
#   eval "$(launch/slurm/local_cluster.sh env)"  # SLURM_CONF for sbatch/sinfo/squeue
#   launch/slurm/local_cluster.sh status
#   launch/slurm/local_cluster.sh stop
#
# Everything (slurm.conf, the munge key and socket, pid/log/state files) lives
# under --dir (default /tmp/mgc-slurm, or $MGC_SLURM_DIR); nothing in /etc is
# touched and no systemd is needed: munged, slurmctld and slurmd run as plain
# daemons started as root and are stopped by their pids. The node has this
# machine's CPUs (nproc) and memory (/proc/meminfo); the partition `debug`
# oversubscribes (OverSubscribe=FORCE), so 2 tasks fit on a 2-CPU machine.
# Exit status: 0 ok, 3 cannot run here (not root / packages missing / the
# daemons did not come up), with one line on stderr saying why.
set -euo pipefail
dir=${MGC_SLURM_DIR:-/tmp/mgc-slurm}
command=${1:-}
shift || true
for arg in "$@"; do
  case "$arg" in
    --dir=*) dir=${arg#--dir=} ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
conf=$dir/slurm.conf

cannot() { echo "local_cluster.sh: $*" >&2; exit 3; }

need_root() { [[ $(id -u) == 0 ]] || cannot "must run as root (slurmd runs jobs as their users)"; }

have_packages() {
  command -v munged >/dev/null && command -v slurmctld >/dev/null \
    && command -v slurmd >/dev/null && command -v sbatch >/dev/null
}

install() {
  have_packages && return 0
  need_root
  command -v apt-get >/dev/null || cannot "no apt-get: install slurm-wlm and munge yourself"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      slurm-wlm munge >"$dir.apt.log" 2>&1 \
    || { apt-get update >>"$dir.apt.log" 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y \
              --no-install-recommends slurm-wlm munge >>"$dir.apt.log" 2>&1; } \
    || cannot "apt-get install slurm-wlm munge failed (see $dir.apt.log)"
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
  local cpus mem host
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  host=$(hostname -s)
  cat >"$conf" <<CONF
# Written by launch/slurm/local_cluster.sh: a one-node test cluster.
ClusterName=mgc-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${MGC_SLURM_CTLD_PORT:-6817}
SlurmdPort=${MGC_SLURM_D_PORT:-6818}
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it may start again
# (default 120 s); short here so that requeue tests are quick.
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=${MGC_SLURM_CRED_EXPIRE:-30}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
MpiDefault=none
SwitchType=switch/none
LaunchParameters=use_interactive_step
KillWait=30
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
}

start() {
  need_root
  have_packages || cannot "slurm-wlm/munge are not installed: run '$0 install' (root, apt)"
  mkdir -p "$dir"/{munge,state,spool}
  chmod 700 "$dir" "$dir/munge"
  write_conf
  if ! pid_alive "$dir/munged.pid"; then
    [[ -f $dir/munge/munge.key ]] || {
      dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 2>/dev/null
      chmod 400 "$dir/munge/munge.key"; }
    munged --force --key-file="$dir/munge/munge.key" \
      --socket="$dir/munge/munge.socket" --pid-file="$dir/munged.pid" \
      --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed" \
      || cannot "munged did not start (see $dir/munged.log)"
  fi
  export SLURM_CONF=$conf
  pid_alive "$dir/slurmctld.pid" || slurmctld -f "$conf" \
    || cannot "slurmctld did not start (see $dir/slurmctld.log)"
  pid_alive "$dir/slurmd.pid" || slurmd -f "$conf" \
    || cannot "slurmd did not start (see $dir/slurmd.log)"
  local deadline=$((SECONDS + 60)) state=""
  while ((SECONDS < deadline)); do
    state=$(sinfo -h -o %t 2>/dev/null | head -n 1 || true)
    if [[ $state == idle || $state == mix || $state == alloc ]]; then
      echo "one-node Slurm up: $(sinfo -h -o '%P %D %t %c CPUs %m MB' | head -n 1)"
      echo "export SLURM_CONF=$conf"
      return 0
    fi
    # A node left DOWN by an earlier run of this script: bring it back.
    [[ $state == down* || $state == drain* ]] && \
      scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
    sleep 1
  done
  cannot "the node did not become idle within 60 s (state '$state'; see $dir/slurmctld.log, $dir/slurmd.log)"
}

stop() {
  local name pid
  if pid_alive "$dir/slurmctld.pid"; then
    # Cancel what still runs, so no job's processes outlive the daemons.
    export SLURM_CONF=$conf
    if [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
      scancel --partition=debug 2>/dev/null || true
      for _ in $(seq 60); do
        [[ -z $(squeue -h -t running,completing -o %i 2>/dev/null) ]] && break
        sleep 1
      done
    fi
  fi
  for name in slurmd slurmctld munged; do
    if pid_alive "$dir/$name.pid"; then
      pid=$(cat "$dir/$name.pid")
      kill -TERM "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "stopped $name (pid $pid)"
    fi
    rm -f "$dir/$name.pid"
  done
}

case "$command" in
  install) mkdir -p "$(dirname "$dir")"; install ;;
  start) start ;;
  up) mkdir -p "$(dirname "$dir")"; install; start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$conf" ;;
  status) SLURM_CONF=$conf sinfo ;;
  *) echo "usage: $0 install|start|up|stop|env|status [--dir=DIR]" >&2; exit 2 ;;
esac
