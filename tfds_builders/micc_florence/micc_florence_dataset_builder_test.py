"""micc_florence builder: DatasetBuilderTestCase, layout parsing, bad input."""

import shutil

from etils import epath
import numpy as np
import pytest
import tensorflow_datasets as tfds

from mgc_tf.faces2d import alignment
from mgc_tf.io import scans
from mgc_tf.io.bad_input import BadExampleError
from tfds_builders.micc_florence import micc_florence_dataset_builder as micc

DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"
SUBJECT_01_OBJ = "frontal1/obj/110920150452.obj"
SUBJECT_02_WRL = "frontal1/vrml/110616114712.wrl"


class MiccFlorenceTest(tfds.testing.DatasetBuilderTestCase):
  """Builds dummy_data (both configs): 3 subjects, 4 sources; one subject and
  one video are broken and skipped."""
  DATASET_CLASS = micc.Builder
  SPLITS = {"test": 3}


def _build(data_dir, config):
  builder = micc.Builder(data_dir=str(data_dir), config=config)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(DUMMY_DATA)))
  examples = {example["source"].decode(): example
              for example in tfds.as_numpy(builder.as_dataset(split="test"))}
  return builder, examples


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("data"), "default")


def test_skips_are_counted(built):
  builder, examples = built
  assert {(e["subject"].decode(), source) for source, e in examples.items()} \
      == {("subject_01", "Video/Indoor-Cooperative.mjpg"),
          ("subject_01", "Video/PTZ-Indoor.avi"),
          ("subject_02", "Rendered/pose_set")}
  subjects = builder.subject_counters["test"]
  assert (subjects.kept, subjects.counts) == (2, {"unreadable scan": 1})
  videos = builder.skip_counters["test"]
  assert (videos.kept, videos.counts) == (3, {"unreadable video": 1})
  # Default stride 5 samples frames 0 and 5; PTZ-Indoor's frame 5 is blank.
  assert builder.frame_tallies["test"].dropped == {"no face found": 1}


def test_frames_settings_and_landmarks(built):
  _, examples = built
  expected = {"Video/Indoor-Cooperative.mjpg": ("Indoor-Cooperative", [0, 5]),
              "Video/PTZ-Indoor.avi": ("PTZ-Indoor", [0]),
              "Rendered/pose_set": ("rendered/pose_set", [0])}
  for source, (setting, indices) in expected.items():
    example = examples[source]
    assert example["setting"].decode() == setting
    assert example["identity"] == example["subject"]
    np.testing.assert_array_equal(example["frame_indices"], indices)
    count = len(indices)
    assert example["frames"].shape == (count, 224, 224, 3)
    assert example["skin"].shape == (count, 224, 224, 1)
    assert example["landmarks"].shape == (count, 68, 2)
    # dlib's landmarks, aligned: the five points sit on the template.
    five = alignment.five_points_from_68(example["landmarks"])
    assert np.abs(five - alignment.TEMPLATE_5PT_224).max() < 12.0


def test_scans_are_the_subjects_files(built):
  _, examples = built
  model = DUMMY_DATA / "subject_01" / "Model"
  obj = scans.read_scan(str(model / SUBJECT_01_OBJ))
  for source in ("Video/Indoor-Cooperative.mjpg", "Video/PTZ-Indoor.avi"):
    example = examples[source]
    assert example["scan_name"].decode() == SUBJECT_01_OBJ
    np.testing.assert_array_equal(example["scan_vertices"], obj.vertices)
    np.testing.assert_array_equal(example["scan_faces"], obj.faces)
  # subject_02 has only a VRML scan, under a Transform: the same face
  # scaled by 1.05 (make_dummy_data.py), so the transform was applied.
  example = examples["Rendered/pose_set"]
  assert example["scan_name"].decode() == SUBJECT_02_WRL
  np.testing.assert_allclose(example["scan_vertices"], 1.05 * obj.vertices,
                             atol=2e-3)
  np.testing.assert_array_equal(example["scan_faces"], obj.faces)


def test_all_frames_config(tmp_path):
  builder, examples = _build(tmp_path, "all_frames")
  np.testing.assert_array_equal(
      examples["Video/PTZ-Indoor.avi"]["frame_indices"], [0, 1, 2, 3, 4, 6])
  np.testing.assert_array_equal(
      examples["Video/Indoor-Cooperative.mjpg"]["frame_indices"], range(7))
  # The rendered set's second image is truncated: dropped, not fatal.
  np.testing.assert_array_equal(
      examples["Rendered/pose_set"]["frame_indices"], [0])
  assert builder.frame_tallies["test"].dropped == {"no face found": 1,
                                                   "unreadable image": 1}


def test_missing_manual_dir_gives_the_instructions(tmp_path):
  builder = micc.Builder(data_dir=str(tmp_path / "data"))
  with pytest.raises(AssertionError, match="Model/frontal1/obj"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "absent")))


# Layout parsing --------------------------------------------------------------


@pytest.mark.parametrize("parts,setting", [
    (("Indoor-Cooperative.mjpg",), "Indoor-Cooperative"),
    (("PTZ-Indoor.mjpeg",), "PTZ-Indoor"),
    (("ptz_outdoor",  "clip 1.avi"), "PTZ-Outdoor"),
    (("extra", "hallway.mp4"), "extra/hallway"),
])
def test_setting_of_video(parts, setting):
  assert micc.setting_of_video(parts) == setting


def _touch(path, data=b"x"):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data)


def test_find_sources(tmp_path):
  subject = epath.Path(tmp_path / "subject_07")
  _touch(subject / "Video" / "Indoor-Cooperative.mjpg")
  _touch(subject / "Video" / "PTZ-Outdoor" / "part1.mpg")
  _touch(subject / "Video" / "notes.txt")
  _touch(subject / "Video" / ".hidden.avi")
  _touch(subject / "Rendered" / "poses" / "a.png")
  (subject / "Rendered" / "empty").mkdir(parents=True)
  sources = micc.find_sources(subject)
  assert [(s.setting, s.relative_path, s.is_video, s.key) for s in sources] \
      == [("Indoor-Cooperative", "Video/Indoor-Cooperative.mjpg", True,
           "subject_07/Video/Indoor-Cooperative.mjpg"),
          ("PTZ-Outdoor", "Video/PTZ-Outdoor/part1.mpg", True,
           "subject_07/Video/PTZ-Outdoor/part1.mpg"),
          ("rendered/poses", "Rendered/poses", False,
           "subject_07/Rendered/poses")]


def test_find_subject_folders(tmp_path):
  root = epath.Path(tmp_path)
  (root / "florence" / "subject_02").mkdir(parents=True)
  (root / "florence" / "subject_01").mkdir()
  (root / "readme_dir").mkdir()
  assert [f.name for f in micc.find_subject_folders(root)] == [
      "subject_01", "subject_02"]
  with pytest.raises(FileNotFoundError, match="subject_01/Video"):
    micc.find_subject_folders(root / "readme_dir")


def test_scan_preference_and_fallback(tmp_path):
  subject = epath.Path(tmp_path / "subject_01")
  source = DUMMY_DATA / "subject_01" / "Model" / "frontal1"
  shutil.copytree(source, subject / "Model" / "frontal1")
  shutil.copytree(source, subject / "Model" / "frontal2")
  assert [p.relative_to(subject / "Model").as_posix() for p in
          micc.find_scan_files(subject, ("frontal2", "frontal1"))] == [
              "frontal2/obj/110920150452.obj",
              "frontal2/vrml/110920150452.wrl",
              "frontal1/obj/110920150452.obj",
              "frontal1/vrml/110920150452.wrl"]
  name, _ = micc.read_subject_scan(subject, ("frontal1",))
  assert name == SUBJECT_01_OBJ
  # A broken .obj falls back to the .wrl of the same scan.
  (subject / "Model" / SUBJECT_01_OBJ).write_text("v 0 0 0\n")
  name, mesh = micc.read_subject_scan(subject, ("frontal1",))
  assert name == "frontal1/vrml/110920150452.wrl"
  assert mesh.faces.shape == (280, 3)
  # Nothing readable: the first error is reported.
  (subject / "Model" / "frontal1" / "vrml" / "110920150452.wrl").write_text("")
  with pytest.raises(BadExampleError) as info:
    micc.read_subject_scan(subject, ("frontal1",))
  assert info.value.reason == scans.UNREADABLE
  assert "110920150452.obj" in str(info.value)
  with pytest.raises(BadExampleError) as info:
    micc.read_subject_scan(subject, ("sidel",))
  assert info.value.reason == "no scan"
