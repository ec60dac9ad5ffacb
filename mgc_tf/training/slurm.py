"""TF_CONFIG from a Slurm job step's environment (no TensorFlow import).

    python3 -m mgc_tf.training.slurm     # prints this task's TF_CONFIG

Run inside `srun` (one process per task): the workers are the step's tasks
in SLURM_PROCID order, on the hosts of SLURM_STEP_NODELIST with
SLURM_STEP_TASKS_PER_NODE tasks each (Slurm's block distribution, the
default); task 0 is the chief.

Why not TensorFlow's SlurmClusterResolver: it gives every job the same ports
(port_base 8888 + local task index), so two jobs that share a node collide,
and it rewrites CUDA_VISIBLE_DEVICES. Here each job gets its own port block,
derived from SLURM_JOB_ID:

    port = MGC_TF_PORT_BASE (12000) + (job_id % 1250) * 16 + SLURM_LOCALID

so ports stay in 12000-31999 (below Linux's ephemeral range) and two jobs
collide only if their ids are equal modulo 1250 while sharing a node. Set
MGC_TF_PORT to give all workers of a job one fixed port instead (one task
per node only). The result is an ordinary TF_CONFIG, the same path the local
and Kubernetes launchers use.
"""

import json
import os
import re
import subprocess
import sys
from typing import Dict, List, Mapping, Sequence

PORT_BASE = 12000
PORTS_PER_JOB = 16
JOB_SLOTS = 1250


def expand_tasks_per_node(value: str) -> List[int]:
  """'2(x3),1' -> [2, 2, 2, 1] (Slurm's SLURM_*_TASKS_PER_NODE format)."""
  counts = []
  for part in value.split(","):
    match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
    if not match:
      raise ValueError(f"cannot read tasks per node {value!r}")
    counts += [int(match.group(1))] * int(match.group(2) or 1)
  return counts


def expand_hostnames(nodelist: str) -> List[str]:
  """Expands a Slurm node list ('gpu[01-03],cpu1') with scontrol."""
  output = subprocess.run(["scontrol", "show", "hostnames", nodelist],
                          capture_output=True, text=True, check=True).stdout
  return output.split()


def job_port_base(job_id: int, base: int = PORT_BASE) -> int:
  return base + (job_id % JOB_SLOTS) * PORTS_PER_JOB


def workers(hosts: Sequence[str], tasks_per_node: Sequence[int], job_id: int,
            base: int = PORT_BASE, fixed_port: int = 0) -> List[str]:
  """host:port of every task, in SLURM_PROCID order (block distribution)."""
  if len(hosts) != len(tasks_per_node):
    raise ValueError(f"{len(hosts)} hosts but tasks per node "
                     f"{list(tasks_per_node)}")
  if fixed_port and max(tasks_per_node) > 1:
    raise ValueError("MGC_TF_PORT gives every worker the same port: it needs "
                     "one task per node")
  if max(tasks_per_node) > PORTS_PER_JOB:
    raise ValueError(f"at most {PORTS_PER_JOB} tasks per node")
  first = job_port_base(job_id, base)
  return [f"{host}:{fixed_port or first + local}"
          for host, count in zip(hosts, tasks_per_node)
          for local in range(count)]


def tf_config(environ: Mapping[str, str] = os.environ,
              hosts: Sequence[str] = ()) -> Dict:
  """This task's TF_CONFIG, from the Slurm step variables."""
  try:
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ["SLURM_JOB_NODELIST"]
    per_node = (environ.get("SLURM_STEP_TASKS_PER_NODE")
                or environ["SLURM_TASKS_PER_NODE"])
    job_id = int(environ["SLURM_JOB_ID"])
    index = int(environ["SLURM_PROCID"])
  except KeyError as error:
    raise ValueError(f"{error.args[0]} is not set: run this inside srun, in "
                     "a Slurm job") from error
  hosts = list(hosts) or expand_hostnames(nodelist)
  cluster = workers(hosts, expand_tasks_per_node(per_node), job_id,
                    int(environ.get("MGC_TF_PORT_BASE", PORT_BASE)),
                    int(environ.get("MGC_TF_PORT", 0)))
  if not 0 <= index < len(cluster):
    raise ValueError(f"SLURM_PROCID {index} but {len(cluster)} tasks")
  return {"cluster": {"worker": cluster},
          "task": {"type": "worker", "index": index}}


def main() -> int:
  try:
    print(json.dumps(tf_config()))
  except (ValueError, subprocess.CalledProcessError) as error:
    print(f"mgc_tf.training.slurm: {error}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
