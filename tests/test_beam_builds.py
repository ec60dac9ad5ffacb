"""Builders on Apache Beam (issue 21): the dummy data built as a plain
generator, on the DirectRunner with 1 worker process and with 2 gives the
same examples (same shards, same order, so the same keys) and the same skip
reports; a Beam build never asks on stdin. "DirectRunner" here is Beam's
local engine named directly (beam_build.LOCAL_RUNNER), as launch/beam/
recommends."""

import builtins
import os
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mgc_tf.data import beam_build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# test id -> (builder, config, manual_dir below the builder folder or None).
BUILDS = {
    "w300_lp": ("w300_lp", "with_flips", "dummy_data"),
    "folder_multiview": ("folder_multiview", "default", "dummy_data"),
    "multipie": ("multipie", "default", "dummy_data"),
    "video_folder": ("video_folder", "default", "dummy_data"),
    "celeba": ("celeba", "default", "dummy_data"),
    "synthetic_multiview": ("synthetic_multiview", "tiny", None),
    # 2 persons x 3 examples per split: persons span the renderer batches.
    "synthetic_multiview_persons": ("synthetic_multiview", "persons_tiny",
                                    None),
}
# Each needs dlib for some of its dummy views (detected landmarks).
NEEDS_DLIB = {"folder_multiview", "multipie", "video_folder", "celeba"}


def _builder(build_id, data_dir):
  """The builder loaded as `tfds build tfds_builders/<name>` loads it: as
  the top-level package `<name>`, from a folder on the driver's sys.path
  only, so the Beam workers can run it only if it is shipped by value."""
  name, config, _ = BUILDS[build_id]
  with tfds.core.utils.add_sys_path(os.path.join(REPO, "tfds_builders")):
    builder_class = tfds.core.community.builder_cls_from_module(
        f"{name}.{name}_dataset_builder")
  return builder_class(data_dir=str(data_dir), config=config)


def build(build_id, data_dir, workers=None):
  """Builds the dummy data; returns the builder."""
  builder = _builder(build_id, data_dir)
  name, _, manual = BUILDS[build_id]
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=(os.path.join(REPO, "tfds_builders", name, manual)
                  if manual else None),
      beam_options=(None if workers is None
                    else beam_build.local_options(workers))))
  return builder


def read_all(builder):
  """{split: [(tfds_id, example)]} in stored order."""
  read_config = tfds.ReadConfig(add_tfds_id=True)
  return {split: [(ex.pop("tfds_id"), ex) for ex in tfds.as_numpy(
      builder.as_dataset(split=split, shuffle_files=False,
                         read_config=read_config))]
          for split in builder.info.splits}


def _tally_reports(builder):
  tallies = getattr(builder, "tallies", {})
  return {split: {role: (tally.state(), tally.summary())
                  for role, tally in roles.items()}
          for split, roles in tallies.items()}


def assert_same_examples(expected, actual, label):
  assert expected.keys() == actual.keys(), label
  for split in expected:
    assert [i for i, _ in expected[split]] == [i for i, _ in actual[split]], (
        label, split)
    for (tfds_id, a), (_, b) in zip(expected[split], actual[split]):
      assert a.keys() == b.keys(), (label, tfds_id)
      for feature in a:
        np.testing.assert_array_equal(a[feature], b[feature],
                                      err_msg=f"{label} {tfds_id} {feature}")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUILDS))
def test_plain_and_beam_builds_agree(name, tmp_path, monkeypatch, capsys):
  pytest.importorskip("apache_beam")
  if name in NEEDS_DLIB:
    pytest.importorskip("dlib")
  plain = build(name, tmp_path / "plain")
  assert not plain.uses_beam
  plain_out = capsys.readouterr().out
  expected, expected_reports = read_all(plain), _tally_reports(plain)

  def no_stdin(*args, **kwargs):
    raise AssertionError(f"the build asked on stdin: {args}")

  monkeypatch.setattr(builtins, "input", no_stdin)
  for workers in (1, 2):
    beam_built = build(name, tmp_path / f"beam{workers}", workers)
    assert beam_built.uses_beam
    out = capsys.readouterr().out
    assert_same_examples(expected, read_all(beam_built), f"{workers} workers")
    assert _tally_reports(beam_built) == expected_reports, workers
    # The same report lines reach the build's output.
    for roles in expected_reports.values():
      for _, summary in roles.values():
        assert summary in out and summary in plain_out, workers


@pytest.mark.slow
def test_plain_build_does_not_need_apache_beam(tmp_path, monkeypatch):
  # None in sys.modules makes `import apache_beam` raise ImportError.
  monkeypatch.setitem(sys.modules, "apache_beam", None)
  builder = build("w300_lp", tmp_path)
  assert not builder.uses_beam
  assert builder.info.splits["train"].num_examples == 4
  assert builder.tallies["train"]["groups"].counts == {"too few views": 1}
