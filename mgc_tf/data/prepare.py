"""Builds the embedded synthetic dataset when a run needs it and it is missing.

Only `synthetic_multiview` can be built unattended (it needs no download);
every other dataset must be built by the user with `tfds build` and its
`--manual_dir`, and `pipeline.load_builder` says how.
"""

import os
import subprocess
import sys
from typing import Optional

import filelock
import tensorflow_datasets as tfds

SYNTHETIC = "synthetic_multiview"


def builder_folder(name: str) -> Optional[str]:
  """`tfds_builders/<name>` of the source checkout, or None when absent."""
  package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  folder = os.path.join(os.path.dirname(package_dir), "tfds_builders", name)
  return folder if os.path.isdir(folder) else None


def tfds_build(folder: str, data_dir: str, config: Optional[str] = None,
               manual_dir: Optional[str] = None) -> None:
  """Runs `tfds build <folder>` (the output is shown as it comes).

  Raises:
    subprocess.CalledProcessError: the build failed.
  """
  command = [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main",
             "build", folder, f"--data_dir={data_dir}"]
  if config:
    command.append(f"--config={config}")
  if manual_dir:
    command.append(f"--manual_dir={manual_dir}")
  print("$ " + " ".join(command), flush=True)
  subprocess.run(command, check=True)


def is_prepared(name: str, data_dir: Optional[str]) -> bool:
  try:
    return tfds.builder(name, data_dir=data_dir).is_prepared()
  except Exception:  # pylint: disable=broad-except
    return False


def ensure_synthetic(name: str, data_dir: Optional[str]) -> bool:
  """Builds `synthetic_multiview[/<config>]` into data_dir if missing.

  Several processes may call this at once (multi-worker): a file lock in
  data_dir lets one build while the others wait.

  Args:
    name: "synthetic_multiview" or "synthetic_multiview/<config>".
    data_dir: TFDS data dir (None: TFDS' default).

  Returns:
    True when it built the dataset, False when it was there already or the
    name is not the synthetic set.

  Raises:
    FileNotFoundError: the builder folder is not there (package installed
      without its source checkout), with the command to run instead.
    subprocess.CalledProcessError: the build failed (its output was shown).
  """
  dataset = name.split("/")[0].split(":")[0]
  if dataset != SYNTHETIC or is_prepared(name, data_dir):
    return False
  folder = builder_folder(SYNTHETIC)
  if folder is None:
    raise FileNotFoundError(
        f"{name} is not built in {data_dir or '~/tensorflow_datasets'} and the "
        "builder folder tfds_builders/synthetic_multiview is not next to the "
        "installed package. From a clone of mgc-tf run:\n  tfds build "
        f"tfds_builders/synthetic_multiview --config=... --data_dir=...")
  data_dir = os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR)
  os.makedirs(data_dir, exist_ok=True)
  with filelock.FileLock(os.path.join(data_dir, f".{SYNTHETIC}.build.lock")):
    if is_prepared(name, data_dir):
      return False
    print(f"{name} is missing; building it (no download needed)", flush=True)
    config = name.split("/")[1].split(":")[0] if "/" in name else None
    tfds_build(folder, data_dir, config=config)
  return True
