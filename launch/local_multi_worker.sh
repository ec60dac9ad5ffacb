#!/usr/bin/env bash
# Runs N training workers on this machine, talking over loopback, each with its
# own TF_CONFIG: the quickest way to try --strategy=multi_worker.
#
#   launch/local_multi_worker.sh 2 --flagfile=configs/quickstart.flags --model_dir=runs/mw
#
# Worker 0 is the chief: it writes checkpoints, summaries and config.json to
# --model_dir; the others save to a scratch directory. Logs: <model_dir>/worker_<i>.log.
# The global --batch_size must be divisible by the number of workers.
set -euo pipefail
if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 NUM_WORKERS [mgc_tf.train flags...]" >&2
  exit 2
fi
num_workers=$1
shift
model_dir=runs/multi_worker
for arg in "$@"; do
  case "$arg" in --model_dir=*) model_dir=${arg#--model_dir=} ;; esac
done
mkdir -p "$model_dir"

# Free ports on loopback, one per worker.
ports=$(python3 - "$num_workers" <<'PY'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
  s.bind(("localhost", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
)
workers=$(for p in $ports; do printf '"localhost:%s",' "$p"; done)
workers="[${workers%,}]"

pids=()
for ((i = 0; i < num_workers; i++)); do
  TF_CONFIG="{\"cluster\": {\"worker\": $workers}, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
    python3 -m mgc_tf.train --strategy=multi_worker "$@" \
    > "$model_dir/worker_$i.log" 2>&1 &
  pids+=($!)
  echo "worker $i: pid ${pids[-1]}, log $model_dir/worker_$i.log"
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' INT TERM
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit $status
