"""mgc_tf.data.beam_build: the same examples, keys and skip reports from a
plain generator, from Beam with 1 worker and with 2 worker processes."""

import json
import os

import pytest

from mgc_tf.data import beam_build
from mgc_tf.io.bad_input import BadExampleError, SkipCounter, skip_bad
from mgc_tf.io.video_io import FrameTally

# 40 items in units of 3: item i is bad when i % 7 == 3 ("seven") or
# i % 5 == 0 ("five"); frames: item i has i % 3 "blurred" frames.
UNITS = [list(range(start, min(start + 3, 40))) for start in range(0, 40, 3)]


def _item_example(item: int):
  if item % 7 == 3:
    raise BadExampleError("seven", f"item {item}")
  if item % 5 == 0:
    raise BadExampleError("five", f"item {item}")
  return f"key-{item:03d}", {"value": item, "square": item * item}


def toy_process(unit, tallies):
  """A unit of items; a module-level function, as builders must give."""
  for item in unit:
    tallies["frames"].add_video(str(item), 2, (
        {"blurred": item % 3} if item % 3 else {}))
  yield from skip_bad(unit, _item_example, tallies["items"],
                      key_of=lambda item: f"item-{item}")


def _tallies():
  return {"items": SkipCounter("toy/train", unit="items"),
          "frames": FrameTally("toy/train frames")}


def test_generate_reports_at_the_end(capsys):
  tallies = _tallies()
  examples = dict(beam_build.generate(UNITS, toy_process, tallies))
  # seven: 3 10 17 24 31 38; five: 0 5 15 20 25 30 35 (10 is a seven).
  assert len(examples) == 40 - 13
  assert tallies["items"].counts == {"five": 7, "seven": 6}
  out = capsys.readouterr().out
  assert "toy/train: kept 27 items, skipped 13" in out
  assert "toy/train frames: kept 80 frames, dropped 39" in out


def test_tally_state_round_trip_keeps_the_report():
  tallies = _tallies()
  list(beam_build.generate(UNITS, toy_process, tallies))
  for tally in tallies.values():
    copy = tally.empty_like()
    copy.restore(tally.state())
    assert copy.summary() == tally.summary()


def test_roles_must_not_hold_the_separator():
  with pytest.raises(ValueError, match="Received"):
    beam_build.units_transform([], toy_process, {"a|b": SkipCounter("x")},
                               "ns")


def test_local_options_name_the_local_engine():
  assert beam_build.local_options_string(2) == (
      f"runner={beam_build.LOCAL_RUNNER},direct_num_workers=2,"
      "direct_running_mode=multi_processing")
  with pytest.raises(ValueError, match="Received: -1"):
    beam_build.local_options_string(-1)


def test_beam_requested_follows_the_download_config():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  assert not beam_build.beam_requested(None)
  assert not beam_build.beam_requested(tfds.download.DownloadConfig())
  assert beam_build.beam_requested(tfds.download.DownloadConfig(
      beam_options=object()))


def _run_beam(workers: int, out_dir: str, staging_dir: str = ""):
  """Runs the toy units on Beam's local engine; returns examples, tallies.

  With `staging_dir` the units are staged in files (limit 0 bytes inline).
  """
  beam = pytest.importorskip("apache_beam")
  options = beam_build.local_options(workers)
  tallies = _tallies()
  path = os.path.join(out_dir, f"examples_{workers}.json")

  def write(pairs, path=path):
    with open(path, "w") as f:
      json.dump(sorted(pairs), f)

  pipeline = beam.Pipeline(options=options)
  _ = (pipeline
       | "Toy" >> beam_build.units_transform(
           UNITS, toy_process, tallies, "test/toy/train",
           staging_dir=staging_dir, max_inline_bytes=0)
       | beam.combiners.ToList()
       | beam.Map(write))
  result = pipeline.run()
  result.wait_until_finish()
  states = beam_build.tally_states_from_metrics(result, "test/toy/train",
                                                tallies)
  for role, tally in tallies.items():
    tally.restore(states[role])
  with open(path) as f:
    examples = {key: example for key, example in json.load(f)}
  return examples, tallies


@pytest.mark.slow
def test_one_and_two_beam_workers_match_the_plain_generator(tmp_path):
  plain_tallies = _tallies()
  plain = {key: example for key, example in
           beam_build.generate(UNITS, toy_process, plain_tallies)}
  for workers, staging_dir in ((1, ""), (2, ""),
                               (2, str(tmp_path / "staged"))):
    examples, tallies = _run_beam(workers, str(tmp_path), staging_dir)
    assert examples == plain, workers
    if staging_dir:
      # The toy units fit in one of the ~1 MB files.
      assert len(os.listdir(staging_dir)) == 1
    for role, tally in tallies.items():
      assert tally.state() == plain_tallies[role].state(), (workers, role)
      assert tally.summary() == plain_tallies[role].summary()
