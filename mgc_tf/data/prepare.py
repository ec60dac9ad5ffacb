"""Builds the embedded synthetic dataset when a run needs it and it is missing.

Only `synthetic_multiview` can be built unattended (it needs no download);
every other dataset must be built by the user with `tfds build` and its
`--manual_dir`, and `pipeline.load_builder` says how.
"""

import ast
import difflib
import os
import subprocess
import sys
from typing import List, Optional

import filelock
import tensorflow_datasets as tfds

SYNTHETIC = "synthetic_multiview"


class DatasetError(ValueError):
  """A --dataset that cannot be used as given; the message is one line that
  says what to do (a close name, the configs, the build command)."""


class DatasetNotPreparedError(DatasetError, FileNotFoundError):
  """A known dataset that has not been built into data_dir."""


def builder_names() -> List[str]:
  """The datasets this checkout has builders for (tfds_builders/<name>)."""
  root = builder_folder("")
  if root is None:
    return []
  return sorted(name for name in os.listdir(root)
                if os.path.isfile(os.path.join(root, name,
                                               f"{name}_dataset_builder.py")))


def builder_config_names(name: str) -> Optional[List[str]]:
  """The BUILDER_CONFIGS names of tfds_builders/<name>, read from its source
  (nothing imported, nothing registered); None when it has none or no
  builder folder is there."""
  folder = builder_folder(name) if name else None
  path = folder and os.path.join(folder, f"{name}_dataset_builder.py")
  if not path or not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  for node in ast.walk(tree):
    if (isinstance(node, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == "BUILDER_CONFIGS"
        for target in node.targets)):
      names = [keyword.value.value for call in ast.walk(node.value)
               if isinstance(call, ast.Call) for keyword in call.keywords
               if keyword.arg == "name" and
               isinstance(keyword.value, ast.Constant)]
      return names or None
  return None


def _did_you_mean(word: str, candidates) -> str:
  close = difflib.get_close_matches(word, sorted(set(candidates)), n=3,
                                    cutoff=0.6)
  if not close:
    return ""
  return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def _prepared_names(data_dir: Optional[str]) -> List[str]:
  root = os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR)
  if "://" in root or not os.path.isdir(root):
    return []
  return [name for name in os.listdir(root)
          if os.path.isdir(os.path.join(root, name))]


def check_dataset_name(name: str, data_dir: Optional[str] = None) -> None:
  """Refuses a dataset name or config that nothing can provide.

  Known names: our builders (tfds_builders/), datasets already in data_dir
  and builders registered with TFDS in this process. A config of one of
  our builders must be one of its BUILDER_CONFIGS.

  Args:
    name: "dataset[/config][:version]".
    data_dir: TFDS data dir (None: TFDS' default).

  Raises:
    DatasetError: one line with the close names ("did you mean") and what
      is available.
  """
  dataset = name.split("/")[0].split(":")[0]
  ours = builder_names()
  known = set(ours) | set(_prepared_names(data_dir))
  if dataset not in known and dataset not in tfds.list_builders(
      with_community_datasets=False):
    available = ", ".join(ours) if ours else "see docs/data.md"
    raise DatasetError(
        f"unknown dataset {dataset!r}{_did_you_mean(dataset, known)} "
        f"(mgc-tf builders: {available}; docs/data.md)")
  if "/" not in name or dataset not in ours:
    return
  config = name.split("/")[1].split(":")[0]
  configs = builder_config_names(dataset)
  if configs is not None and config not in configs:
    raise DatasetError(
        f"dataset {dataset!r} has no config {config!r}"
        f"{_did_you_mean(config, configs)} (its configs: "
        f"{', '.join(configs)})")


def builder_folder(name: str) -> Optional[str]:
  """`tfds_builders/<name>` of the source checkout, or None when absent
  ("" gives tfds_builders/ itself)."""
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


def folder_missing(name: str, data_dir: Optional[str]) -> bool:
  """True when data_dir has no folder for `name` ("dataset[/config]"), so
  it cannot be prepared; asking TFDS would only log its failed search."""
  root = os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR)
  if "://" in root:
    return False
  parts = name.split(":")[0].split("/")[:2]
  return not os.path.isdir(os.path.join(root, *parts))


def is_prepared(name: str, data_dir: Optional[str]) -> bool:
  if folder_missing(name, data_dir):
    return False
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
    DatasetError: an unknown dataset or config (checked before anything
      is built).
    subprocess.CalledProcessError: the build failed (its output was shown).
  """
  # Every name is checked (before anything is built): a run's misspelled
  # --dataset fails here, before its eval set is built.
  check_dataset_name(name, data_dir)
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
