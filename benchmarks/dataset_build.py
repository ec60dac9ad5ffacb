"""Dataset build speed: plain generator vs Beam with 1 and with 2 workers.

  PYTHONPATH=. python benchmarks/dataset_build.py [--replicas=30]
      [--workers=1,2] [--work_dir=/tmp/mgc_tf_dataset_build_benchmark]

A preprocessing-bound build: the `celeba` builder (dlib detection, 68
landmarks, alignment, skin map per photo) on its dummy layout replicated
--replicas times (11 photos each, 3 of them bad, each copy its own
identities, so one unit of work per identity and split). Built once as a
plain generator, then on Beam's local engine (multi_processing,
`beam_build.local_options`) with each --workers count, each into a fresh data_dir, in one run. Prints photos/s
and examples/s (examples are groups of up to 3 photos) per build, wall
times, and ratios to the plain build and to Beam with 1 worker. Each Beam
time includes starting its worker processes (each imports TensorFlow and
loads dlib's model). Checks that all builds store the same number of
examples and print the same skip report. Target: 2 workers >= 1.7x one
worker.
"""

import os
import shutil
import sys
import time

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
# The DirectRunner's worker processes must import this checkout's code too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
              if p])

import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

from mgc_tf.data import beam_build  # pylint: disable=g-import-not-at-top

from tfds_builders.celeba import celeba_dataset_builder as celeba  # pylint: disable=g-import-not-at-top

_REPLICAS = flags.DEFINE_integer(
    "replicas", 30, "Copies of the 11-photo dummy layout.")
_WORKERS = flags.DEFINE_list("workers", ["1", "2"],
                             "Beam worker process counts to time.")
_WORK_DIR = flags.DEFINE_string(
    "work_dir", "/tmp/mgc_tf_dataset_build_benchmark",
    "Scratch folder: the replicated layout and the built datasets.")

DUMMY = os.path.join(REPO, "tfds_builders", "celeba", "dummy_data")


def _lines(name):
  with open(os.path.join(DUMMY, name)) as f:
    return [line.split() for line in f if line.strip()]


def replicate_layout(folder: str, replicas: int) -> int:
  """Writes the celeba layout with the dummy photos `replicas` times.

  Copy r of photo k is file number r * 11 + k; its identity is the dummy
  identity * 1000 + r, its split and 5-point annotation the dummy's.

  Returns:
    the number of photos written.
  """
  images = os.path.join(folder, celeba.IMAGE_DIR)
  os.makedirs(images, exist_ok=True)
  partition = dict(_lines(celeba.PARTITION_FILE))
  identity = dict(_lines(celeba.IDENTITY_FILE))
  landmark_rows = {row[0]: row[1:]
                   for row in _lines(celeba.LANDMARKS_FILE)[2:]}
  names = sorted(partition)
  part_out, id_out, lm_out = [], [], []
  for replica in range(replicas):
    for number, name in enumerate(names, start=1):
      new = f"{replica * len(names) + number:06d}.jpg"
      shutil.copyfile(os.path.join(DUMMY, celeba.IMAGE_DIR, name),
                      os.path.join(images, new))
      part_out.append(f"{new} {partition[name]}")
      id_out.append(f"{new} {int(identity[name]) * 1000 + replica}")
      lm_out.append(" ".join([new] + landmark_rows[name]))
  header = " ".join(_lines(celeba.LANDMARKS_FILE)[1])
  for file_name, lines in ((celeba.PARTITION_FILE, part_out),
                           (celeba.IDENTITY_FILE, id_out),
                           (celeba.LANDMARKS_FILE,
                            [str(len(lm_out)), header] + lm_out)):
    with open(os.path.join(folder, file_name), "w") as f:
      f.write("\n".join(lines) + "\n")
  return len(part_out)


def build(manual_dir: str, data_dir: str, workers: int):
  """Builds celeba; returns (seconds, examples, skip reports)."""
  options = beam_build.local_options(workers) if workers else None
  builder = celeba.Builder(data_dir=data_dir, config="default")
  start = time.perf_counter()
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, beam_options=options))
  seconds = time.perf_counter() - start
  examples = sum(split.num_examples for split in builder.info.splits.values())
  reports = {split: counter.summary()
             for split, counter in builder.skip_counters.items()}
  return seconds, examples, reports


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _REPLICAS.value < 1:
    print(f"error: --replicas must be >= 1; Received: {_REPLICAS.value}",
          file=sys.stderr)
    return 2
  try:
    worker_counts = [int(value) for value in _WORKERS.value]
  except ValueError:
    worker_counts = [0]
  if any(count < 1 for count in worker_counts):
    print(f"error: --workers must be positive integers; Received: "
          f"{','.join(_WORKERS.value)}", file=sys.stderr)
    return 2
  shutil.rmtree(_WORK_DIR.value, ignore_errors=True)
  manual_dir = os.path.join(_WORK_DIR.value, "manual")
  photos = replicate_layout(manual_dir, _REPLICAS.value)
  print(f"celeba dummy layout x {_REPLICAS.value}: {photos} photos",
        flush=True)

  rows = []
  for label, workers in [("plain generator", 0)] + [
      (f"Beam, {count} worker{'s' if count > 1 else ''}", count)
      for count in worker_counts]:
    data_dir = os.path.join(_WORK_DIR.value, f"data_{workers}")
    seconds, examples, reports = build(manual_dir, data_dir, workers)
    rows.append((label, workers, seconds, examples, reports))
    print(f"{label}: {seconds:.1f} s", flush=True)

  plain_examples, plain_reports = rows[0][3], rows[0][4]
  same = all(row[3] == plain_examples and row[4] == plain_reports
             for row in rows)
  one_worker = next((row[2] for row in rows if row[1] == 1), None)
  print()
  print(f"| build | wall s | photos/s | examples/s | vs plain | "
        f"vs Beam 1 worker |")
  print("|---|---|---|---|---|---|")
  for label, _, seconds, examples, _ in rows:
    vs_one = f"{one_worker / seconds:.2f}x" if one_worker else "-"
    print(f"| {label} | {seconds:.1f} | {photos / seconds:.2f} | "
          f"{examples / seconds:.2f} | {rows[0][2] / seconds:.2f}x | "
          f"{vs_one} |")
  print()
  print(f"{photos} photos, {plain_examples} examples stored per build; "
        f"same examples count and skip reports in every build: {same}")
  print(f"CPU cores visible: {os.cpu_count()}; load average at the end: "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
  return 0 if same else 1


if __name__ == "__main__":
  app.run(main)
