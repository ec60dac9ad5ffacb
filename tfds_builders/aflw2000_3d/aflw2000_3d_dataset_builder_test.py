"""aflw2000_3d builder: DatasetBuilderTestCase, .mat reader, layouts, skips."""

import shutil
import zipfile

from etils import epath
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from mgc_tf.faces2d import alignment
from mgc_tf.io.bad_input import BadExampleError
from tfds_builders.aflw2000_3d import aflw2000_3d_dataset_builder as aflw

DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"
GOOD_STEMS = ["image00002", "image00004", "image00006"]
# What dummy_data/make_dummy_data.py breaks on purpose.
EXPECTED_SKIPS = {"unreadable image": 1, "non-finite landmarks": 1,
                  "unreadable mat file": 1}


class Aflw2000Test(tfds.testing.DatasetBuilderTestCase):
  """Builds dummy_data: 6 images, 3 broken ones skipped."""
  DATASET_CLASS = aflw.Builder
  SPLITS = {"test": 3}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """The dummy data built once: (builder, {file stem: example})."""
  builder = aflw.Builder(data_dir=str(tmp_path_factory.mktemp("data")))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(DUMMY_DATA)))
  examples = {example["file_name"].decode(): example for example in
              tfds.as_numpy(builder.as_dataset(split="test"))}
  return builder, examples


def test_broken_files_are_skipped_and_counted(built):
  builder, examples = built
  assert sorted(examples) == sorted(f"{stem}.jpg" for stem in GOOD_STEMS)
  counter = builder.skip_counters["test"]
  assert counter.counts == EXPECTED_SKIPS
  assert counter.kept == 3


def test_examples_match_the_mat_files(built):
  _, examples = built
  for stem in GOOD_STEMS:
    example = examples[f"{stem}.jpg"]
    mat = scipy.io.loadmat(str(DUMMY_DATA / "AFLW2000" / f"{stem}.mat"))
    expected = mat["pt3d_68"][:2].T - 1.0  # MATLAB 1-based -> 0-based
    np.testing.assert_allclose(example["landmarks_original"], expected,
                               atol=1e-4)
    np.testing.assert_allclose(
        example["box"], [*expected.min(0), *expected.max(0)], atol=1e-4)
    np.testing.assert_allclose(example["pose"], mat["Pose_Para"][0, :3],
                               rtol=1e-6)
    assert example["yaw_degrees"] == pytest.approx(
        np.degrees(mat["Pose_Para"][0, 1]), rel=1e-5)


def test_original_jpeg_is_stored_unchanged(built):
  builder, _ = built
  # Read the encoded bytes back, without decoding.
  dataset = builder.as_dataset(
      split="test", decoders={"image": tfds.decode.SkipDecoding()})
  for example in tfds.as_numpy(dataset):
    name = example["file_name"].decode()
    assert example["image"] == (DUMMY_DATA / "AFLW2000" / name).read_bytes()


def test_crop_landmarks_map_back_with_the_inverse_transform(built):
  _, examples = built
  for example in examples.values():
    assert example["aligned_image"].shape == (224, 224, 3)
    assert example["skin"].shape == (224, 224, 1)
    back = alignment.transform_points(
        alignment.invert_affine(example["transform"].astype(np.float64)),
        example["landmarks"])
    np.testing.assert_allclose(back, example["landmarks_original"], atol=0.01)
    # The crop puts the eyes, nose and mouth on the alignment template.
    five = alignment.five_points_from_68(example["landmarks"])
    assert np.abs(five - alignment.TEMPLATE_5PT_224).max() < 12.0


def test_missing_manual_dir_gives_the_instructions(tmp_path):
  builder = aflw.Builder(data_dir=str(tmp_path / "data"))
  with pytest.raises(AssertionError, match="AFLW2000-3D.zip"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "absent")))


# Parsers --------------------------------------------------------------------


def _write_mat(path, **variables):
  scipy.io.savemat(str(path), variables)
  return str(path)


def _good_variables():
  landmarks = np.stack([np.linspace(10, 80, 68), np.linspace(20, 90, 68),
                        np.zeros(68)])
  return {"pt3d_68": landmarks,
          "Pose_Para": np.array([[0.1, -0.7, 0.2, 1.0, 2.0, 3.0, 0.001]])}


def test_read_annotation(tmp_path):
  variables = _good_variables()
  annotation = aflw.read_annotation(_write_mat(tmp_path / "a.mat",
                                               **variables))
  np.testing.assert_allclose(annotation.landmarks,
                             variables["pt3d_68"][:2].T - 1.0)
  np.testing.assert_allclose(annotation.pose, [0.1, -0.7, 0.2], rtol=1e-6)
  assert annotation.landmarks.dtype == np.float32


@pytest.mark.parametrize("change,reason", [
    ({"pt3d_68": None}, "missing mat variable"),
    ({"Pose_Para": None}, "missing mat variable"),
    ({"pt3d_68": np.zeros((2, 21))}, "wrong landmark count"),
    ({"pt3d_68": np.full((3, 68), np.nan)}, "non-finite landmarks"),
    ({"Pose_Para": np.array([[0.1, np.nan, 0.0, 0, 0, 0, 1]])}, "bad pose"),
    ({"Pose_Para": np.array([[0.1, 0.2]])}, "bad pose"),
])
def test_read_annotation_rejects_bad_files(tmp_path, change, reason):
  variables = _good_variables()
  variables.update(change)
  variables = {k: v for k, v in variables.items() if v is not None}
  with pytest.raises(BadExampleError) as info:
    aflw.read_annotation(_write_mat(tmp_path / "a.mat", **variables))
  assert info.value.reason == reason


def test_read_annotation_of_a_truncated_file(tmp_path):
  path = tmp_path / "a.mat"
  _write_mat(path, **_good_variables())
  path.write_bytes(path.read_bytes()[:200])
  with pytest.raises(BadExampleError) as info:
    aflw.read_annotation(str(path))
  assert info.value.reason == "unreadable mat file"


def test_find_image_folder_layouts(tmp_path):
  subfolder = epath.Path(tmp_path / "sub")
  shutil.copytree(DUMMY_DATA / "AFLW2000", subfolder / "AFLW2000")
  assert aflw.find_image_folder(subfolder) == subfolder / "AFLW2000"
  flat = epath.Path(tmp_path / "flat")
  shutil.copytree(DUMMY_DATA / "AFLW2000", flat)
  assert aflw.find_image_folder(flat) == flat
  # The zip as distributed: AFLW2000/ at its top, extracted by the build.
  zipped = epath.Path(tmp_path / "zipped")
  zipped.mkdir()
  with zipfile.ZipFile(zipped / aflw.ZIP_NAME, "w") as archive:
    for path in (DUMMY_DATA / "AFLW2000").iterdir():
      archive.write(path, f"AFLW2000/{path.name}")

  def extract(path):
    target = tmp_path / "extracted"
    with zipfile.ZipFile(path) as archive:
      archive.extractall(target)
    return target
  assert aflw.find_image_folder(zipped, extract) == (
      epath.Path(tmp_path / "extracted") / "AFLW2000")
  with pytest.raises(FileNotFoundError, match="AFLW2000-3D.zip"):
    aflw.find_image_folder(zipped)  # No extractor: the zip is not opened.
