"""folder_multiview builder: full build on dummy_data, grouping, skips."""

import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mgc_tf.data import groups as groups_lib
from mgc_tf.faces2d import alignment
from mgc_tf.io.bad_input import SkipCounter
from tfds_builders.folder_multiview import (
    folder_multiview_dataset_builder as fm)

DUMMY_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "dummy_data")


class FolderMultiviewTest(tfds.testing.DatasetBuilderTestCase):
  """Builds dummy_data: alice (3 of 4 views) and bob/session1 (2 views).

  bob/session2 loses a view to a 5-point landmark file and is skipped.
  """
  DATASET_CLASS = fm.Builder
  SPLITS = {"train": 2}


def test_split_into_chunks_balances_sizes():
  assert [len(c) for c in fm.split_into_chunks(list(range(9)), 8)] == [5, 4]
  assert [len(c) for c in fm.split_into_chunks(list(range(8)), 8)] == [8]
  assert [len(c) for c in fm.split_into_chunks(list(range(17)), 8)] == [
      6, 6, 5]
  assert fm.split_into_chunks([], 8) == []
  assert fm.split_into_chunks([1, 2, 3], 2) == [[1, 2], [3]]
  chunks = fm.split_into_chunks(list(range(11)), 4)
  assert sum(chunks, []) == list(range(11))  # order kept, nothing lost
  with pytest.raises(ValueError):
    fm.split_into_chunks([1], 0)


def test_find_view_groups_layout():
  groups = fm.find_view_groups(DUMMY_DATA, max_views_per_group=8)
  assert [g.key for g in groups] == ["alice#0", "bob/session1#0",
                                     "bob/session2#0"]
  assert [g.identity for g in groups] == ["alice", "bob", "bob"]
  assert [os.path.basename(p) for p in groups[0].image_paths] == [
      "a_0.jpg", "a_1.jpg", "a_2.jpg", "broken.jpg"]
  # Landmark files and the script at the root are not views.
  assert all(p.endswith(".jpg") for g in groups for p in g.image_paths)
  small = fm.find_view_groups(DUMMY_DATA, max_views_per_group=3)
  assert [g.key for g in small][:2] == ["alice#0", "alice#1"]
  assert [len(g.image_paths) for g in small][:2] == [2, 2]


def test_find_view_groups_ignores_hidden_and_root_files(tmp_path):
  (tmp_path / "loose.jpg").write_bytes(b"x")
  (tmp_path / ".cache").mkdir()
  (tmp_path / ".cache" / "a.jpg").write_bytes(b"x")
  (tmp_path / "eve" / "deep" / "deeper").mkdir(parents=True)
  (tmp_path / "eve" / "deep" / "deeper" / "x.png").write_bytes(b"x")
  (tmp_path / "eve" / ".hidden.jpg").write_bytes(b"x")
  groups = fm.find_view_groups(str(tmp_path), 8)
  assert [(g.identity, g.key) for g in groups] == [("eve",
                                                    "eve/deep/deeper#0")]


def test_generate_examples_drops_views_and_counts():
  groups = fm.find_view_groups(DUMMY_DATA, max_views_per_group=8)
  groups_counter = SkipCounter("groups")
  views_counter = SkipCounter("views", unit="views")
  examples = dict(fm.generate_examples(groups, groups_counter, views_counter,
                                       image_size=224))
  assert sorted(examples) == ["alice#0", "bob/session1#0"]
  assert groups_counter.counts == {"too few views": 1}
  assert groups_counter.kept == 2
  # bob/session2's good view is not stored (its partner is bad, the group
  # is skipped): counted as dropped with its group, not as kept.
  assert views_counter.counts == {"unreadable image": 1,
                                  "wrong landmark count": 1,
                                  groups_lib.DROPPED_WITH_GROUP: 1}
  stored = sum(len(example["view_names"]) for example in examples.values())
  assert views_counter.kept == stored == 5  # alice 3, bob/session1 2
  assert "kept 5 views, skipped 3" in views_counter.summary()
  assert "bob/session2/c_0.jpg: dropped with its group" in (
      views_counter.summary())

  alice = examples["alice#0"]
  assert alice["view_names"] == ["alice/a_0.jpg", "alice/a_1.jpg",
                                 "alice/a_2.jpg"]
  np.testing.assert_array_equal(alice["landmarks_detected"],
                                [False, False, True])
  assert alice["identity"] == "alice" and alice["capture"] == "alice"
  assert alice["landmarks"].shape == (3, 68, 2)
  assert all(image.shape == (224, 224, 3) for image in alice["images"])
  assert all(skin.shape == (224, 224, 1) for skin in alice["skin"])
  # All views show the same face aligned to the template: the eye centres of
  # the file-annotated (.pts, .txt) and the detected view land near it.
  template_eyes = alignment.template_points(224)[:2]
  for view_landmarks in alice["landmarks"]:
    eyes = alignment.five_points_from_68(view_landmarks)[:2]
    np.testing.assert_allclose(eyes, template_eyes, atol=8.0)


def test_missing_manual_dir_gives_instructions(tmp_path):
  builder = fm.Builder(data_dir=str(tmp_path / "data"))
  with pytest.raises(AssertionError, match="one folder per person"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "missing")))


def test_manual_dir_without_image_folders_is_an_error(tmp_path):
  manual_dir = tmp_path / "manual"
  manual_dir.mkdir()
  shutil.copy(os.path.join(DUMMY_DATA, "make_dummy_data.py"), manual_dir)
  builder = fm.Builder(data_dir=str(tmp_path / "data"))
  with pytest.raises(ValueError, match="No image folders found"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir)))


if __name__ == "__main__":
  tfds.testing.test_main()
