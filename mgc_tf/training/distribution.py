"""tf.distribute strategies for the trainer.

  default       the default strategy (one device)
  mirrored      MirroredStrategy over the local GPUs; on a CPU-only machine,
                `num_cpu_devices` > 1 splits the CPU into logical devices so
                replicas can be tested anywhere
  multi_worker  MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG
"""

import json
import os
import tempfile
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def split_cpu(num_devices: int) -> None:
  """Splits the first CPU into `num_devices` logical devices.

  Must run before TensorFlow initialises its devices (before any op).

  Raises:
    RuntimeError: when the devices are already initialised.
  """
  if num_devices <= 1:
    return
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as error:
    raise RuntimeError(
        "--num_cpu_devices must be applied before TensorFlow runs any op; "
        f"it was too late here ({error})") from error


def make_strategy(kind: str, num_cpu_devices: int = 1
                  ) -> tf.distribute.Strategy:
  """Creates the strategy `kind` (see module docstring).

  Raises:
    ValueError: unknown kind, or multi_worker without a usable TF_CONFIG.
  """
  if kind not in STRATEGIES:
    raise ValueError(f"--strategy={kind!r} is not one of {STRATEGIES}")
  split_cpu(num_cpu_devices)
  if kind == "default":
    return tf.distribute.get_strategy()
  if kind == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=cpus)
  tf_config = os.environ.get("TF_CONFIG")
  if not tf_config:
    raise ValueError(
        "--strategy=multi_worker reads the cluster from the TF_CONFIG "
        "environment variable, which is not set. See launch/README.md "
        "(local, Slurm and Kubernetes launchers).")
  try:
    json.loads(tf_config)
  except json.JSONDecodeError as error:
    raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from error
  return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints and summaries."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  spec = resolver.cluster_spec().as_dict()
  return (resolver.task_type == "worker" and resolver.task_id == 0
          and "chief" not in spec)


def worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
  """Where this worker writes checkpoints.

  Every worker must save (saving is collective), but only the chief's copy
  is kept in model_dir; the others write to a scratch directory.
  """
  if is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  return os.path.join(tempfile.gettempdir(), "mgc_tf_workers",
                      f"{resolver.task_type}_{resolver.task_id}")


def num_workers(strategy: tf.distribute.Strategy) -> int:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None:
    return 1
  cluster = resolver.cluster_spec().as_dict()
  return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def describe(strategy: tf.distribute.Strategy) -> str:
  """A one-line description for the console."""
  name = type(strategy).__name__
  return (f"{name}: {strategy.num_replicas_in_sync} replica(s), "
          f"{num_workers(strategy)} worker(s)")

