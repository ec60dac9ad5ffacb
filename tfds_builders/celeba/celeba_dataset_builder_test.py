"""Tests of the celeba builder and its annotation readers.

dummy_data (see make_dummy_data.py): train 000001-04 (identity 10), 000005
and the unreadable 000006 (identity 20); validation 000007-08 (identity 30);
test 000009 and the faceless 000010 (identity 40), 000011 (identity 50,
annotated off the face).
"""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

pytest.importorskip("dlib")

from mgc_tf.data.manual_dir import ManualDirError  # pylint: disable=g-import-not-at-top
from mgc_tf.faces2d import alignment  # pylint: disable=g-import-not-at-top
from mgc_tf.faces2d.preprocessing import Detection  # pylint: disable=g-import-not-at-top
from mgc_tf.io.bad_input import BadExampleError  # pylint: disable=g-import-not-at-top
from tfds_builders.celeba import celeba_dataset_builder as builder_lib  # pylint: disable=g-import-not-at-top

DUMMY_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "dummy_data")


class CelebATest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = builder_lib.Builder
  # train: identity 10 -> [000001-03], [000004]; identity 20 -> [000005].
  # validation: identity 30 -> [000007, 000008]. test: identity 40 -> [000009].
  SPLITS = {"train": 3, "validation": 1, "test": 1}
  SKIP_CHECKSUMS = True


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  builder = builder_lib.Builder(
      data_dir=str(tmp_path_factory.mktemp("celeba")), config="default")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=DUMMY_DATA))
  examples = {
      split: [ex for ex in tfds.as_numpy(builder.as_dataset(split=split))]
      for split in ("train", "validation", "test")}
  return builder, examples


def test_groups_follow_identity_and_file_order(built):
  _, examples = built
  groups = {split: sorted(
      (ex["identity"].decode(), [n.decode() for n in ex["file_names"]])
      for ex in split_examples) for split, split_examples in examples.items()}
  assert groups == {
      "train": [("10", ["000001.jpg", "000002.jpg", "000003.jpg"]),
                ("10", ["000004.jpg"]),
                ("20", ["000005.jpg"])],
      "validation": [("30", ["000007.jpg", "000008.jpg"])],
      "test": [("40", ["000009.jpg"])],
  }


def test_views_are_aligned_crops(built):
  _, examples = built
  for example in examples["train"] + examples["validation"]:
    views = len(example["file_names"])
    assert example["images"].shape == (views, 224, 224, 3)
    assert example["skin"].shape == (views, 224, 224, 1)
    assert example["landmarks"].shape == (views, 68, 2)
    five = alignment.five_points_from_68(example["landmarks"])
    assert np.abs(five - alignment.TEMPLATE_5PT_224).max() < 10.0
    # Cheeks are skin.
    assert example["skin"][:, 120:140, 80:100].mean() > 128


def test_bad_images_are_skipped_and_counted(built):
  builder, _ = built
  counters = builder.skip_counters
  assert counters["train"].kept == 5
  assert counters["train"].counts == {"unreadable image": 1}
  assert counters["validation"].kept == 2 and counters["validation"].skipped == 0
  assert counters["test"].kept == 1
  assert counters["test"].counts == {"no face found": 1,
                                     "face does not match annotation": 1}


def test_missing_manual_dir_gives_instructions(tmp_path):
  builder = builder_lib.Builder(data_dir=str(tmp_path), config="default")
  with pytest.raises(AssertionError) as error:
    builder.download_and_prepare()
  assert "img_align_celeba.zip" in str(error.value)


def test_missing_annotation_file_is_named(tmp_path):
  (tmp_path / "img_align_celeba").mkdir()
  (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n")
  builder = builder_lib.Builder(data_dir=str(tmp_path / "data"),
                                config="default")
  with pytest.raises(ManualDirError, match="lacks identity_CelebA.txt"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path)))


# ------------------------------------------------------------- readers ----


def test_read_real_format_files():
  identities = builder_lib.read_identities(
      os.path.join(DUMMY_DATA, "identity_CelebA.txt"))
  assert identities["000001.jpg"] == "10" and identities["000011.jpg"] == "50"
  partition = builder_lib.read_partition(
      os.path.join(DUMMY_DATA, "list_eval_partition.txt"))
  assert [partition[f"{n:06d}.jpg"] for n in (1, 7, 9)] == [
      "train", "validation", "test"]
  landmarks = builder_lib.read_five_point_landmarks(
      os.path.join(DUMMY_DATA, "list_landmarks_align_celeba.txt"))
  assert len(landmarks) == 11 and landmarks["000001.jpg"].shape == (5, 2)


def test_read_landmarks_exact_values(tmp_path):
  path = tmp_path / "list_landmarks_align_celeba.txt"
  path.write_text(
      "1\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x "
      "leftmouth_y rightmouth_x rightmouth_y\n"
      "000001.jpg 69  109  106  113   77  142   73  152  108  154\n")
  points = builder_lib.read_five_point_landmarks(str(path))["000001.jpg"]
  np.testing.assert_array_equal(
      points, [[69, 109], [106, 113], [77, 142], [73, 152], [108, 154]])


@pytest.mark.parametrize("reader,content", [
    (builder_lib.read_identities, "000001.jpg\n"),
    (builder_lib.read_identities, "000001.jpg abc\n"),
    (builder_lib.read_partition, "000001.jpg 3\n"),
    (builder_lib.read_partition, "000001.jpg 0 1\n"),
    (builder_lib.read_five_point_landmarks,
     "000001.jpg 69 109 106 113 77 142 73 152 108 154\n"),  # no header
    (builder_lib.read_five_point_landmarks,
     "1\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x "
     "leftmouth_y rightmouth_x rightmouth_y\n000001.jpg 69 109 106\n"),
    (builder_lib.read_five_point_landmarks,
     "2\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x "
     "leftmouth_y rightmouth_x rightmouth_y\n"
     "000001.jpg 69 109 106 113 77 142 73 152 108 154\n"),  # count mismatch
])
def test_malformed_annotation_names_the_file(tmp_path, reader, content):
  path = tmp_path / "annotation.txt"
  path.write_text(content)
  with pytest.raises(ValueError, match="annotation.txt"):
    reader(str(path))


def test_split_records_order_and_missing_identity():
  partition = {"000003.jpg": "train", "000001.jpg": "train",
               "000002.jpg": "test", "000004.jpg": "train"}
  identities = {"000001.jpg": "7", "000003.jpg": "7", "000004.jpg": "12"}
  records = builder_lib.split_records(partition, identities, None)
  assert [(r.file_name, r.identity) for r in records["train"]] == [
      ("000001.jpg", "7"), ("000003.jpg", "7"), ("000004.jpg", "12")]
  assert [(r.file_name, r.identity) for r in records["test"]] == [
      ("000002.jpg", None)]
  assert records["validation"] == []


def test_config_validation():
  with pytest.raises(ValueError, match="views_per_group"):
    builder_lib.CelebAConfig(name="bad", views_per_group=0)


def test_chunk_keeps_remainder():
  assert builder_lib.chunk([1, 2, 3, 4, 5, 6, 7], 3) == [[1, 2, 3], [4, 5, 6], [7]]
  assert builder_lib.chunk([1, 2], 3) == [[1, 2]]


def _detection_at(five_points: np.ndarray) -> Detection:
  """A Detection whose 68 landmarks have the given 5 derived points."""
  landmarks = np.zeros([68, 2], np.float32)
  landmarks[36:42] = five_points[0]
  landmarks[42:48] = five_points[1]
  landmarks[30] = five_points[2]
  landmarks[48] = five_points[3]
  landmarks[54] = five_points[4]
  return Detection(box=np.zeros(4, np.float32), landmarks=landmarks,
                   score=1.0)


def test_select_annotated_face_picks_the_matching_detection():
  annotated = np.array([[69, 109], [106, 113], [77, 142], [73, 152],
                        [108, 154]], np.float64)
  big_other_face = _detection_at(annotated * 2.0 + 50.0)
  near = _detection_at(annotated + 3.0)  # within 0.3 eye distances (~11 px)
  assert builder_lib.select_annotated_face([big_other_face, near],
                                           annotated) is near
  far = _detection_at(annotated + 15.0)
  with pytest.raises(BadExampleError) as error:
    builder_lib.select_annotated_face([big_other_face, far], annotated)
  assert error.value.reason == "face does not match annotation"
