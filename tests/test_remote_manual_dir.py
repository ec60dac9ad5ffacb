"""Manual folders on a remote filesystem (issue 21).

The builders list and open `--manual_dir` through `mgc_tf.io.files`, which
uses `tf.io.gfile` for URLs (`gs://`, `s3://`, ...). These tests copy a
builder's dummy data into TensorFlow's in-memory filesystem (`ram://`,
which needs no network) and check that a build from there gives the same
examples, keys and skip reports as a build from the local folder.

TFDS turns a manual_dir into an `epath.Path`, and epath (1.15) knows only
`gs://`, `s3://`, `az://` and `hf://`: `epath.Path("ram://...")` raises
KeyError. `RamPath` is a path class registered with epath, which passes an
instance through unchanged, so the builder receives a `ram://` manual_dir
the way it receives a `gs://` one (as a path whose `os.fspath` is the URL).
"""

import importlib
import os
import tempfile
import uuid

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from mgc_tf.data import beam_build
from mgc_tf.data import manual_dir as manual_dir_lib
from mgc_tf.io import annotations, files, video_io
from mgc_tf.io.bad_input import BadExampleError, read_image_rgb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@epath.register_path_cls
class RamPath(os.PathLike):
  """A `ram://` folder as TFDS and `ManualDirBuild` use a manual_dir: the
  few `epath.Path` methods they call, through tf.io.gfile."""

  def __init__(self, url: str):
    self._url = url.rstrip("/")

  def __fspath__(self) -> str:
    return self._url

  def __str__(self) -> str:
    return self._url

  def __repr__(self) -> str:
    return f"RamPath({self._url!r})"

  def __eq__(self, other) -> bool:
    return isinstance(other, RamPath) and str(other) == self._url

  def __hash__(self) -> int:
    return hash(self._url)

  def __truediv__(self, name: str) -> "RamPath":
    return RamPath(f"{self._url}/{name}")

  def joinpath(self, *names: str) -> "RamPath":
    return RamPath("/".join((self._url,) + names))

  def expanduser(self) -> "RamPath":
    return self

  def exists(self) -> bool:
    return tf.io.gfile.exists(self._url)

  def is_dir(self) -> bool:
    return tf.io.gfile.isdir(self._url)

  def iterdir(self):
    for name in tf.io.gfile.listdir(self._url):
      yield self / name.rstrip("/")


def copy_to_ram(local_folder: str, url: str) -> None:
  """Copies a local folder tree to `url`, making every folder (ram://
  lists only folders that were made)."""
  for folder, _, names in os.walk(local_folder):
    relative = os.path.relpath(folder, local_folder)
    target = url if relative == "." else f"{url}/{relative}"
    tf.io.gfile.makedirs(target)
    for name in names:
      tf.io.gfile.copy(os.path.join(folder, name), f"{target}/{name}")


def remove_ram_tree(url: str) -> None:
  """Removes a ram:// folder tree.

  Not one `tf.io.gfile.rmtree`: TF 2.21's ram:// lists children by a bare
  name prefix, so folder `AFW` also shows `_Flip` when a sibling `AFW_Flip`
  exists, and rmtree of `AFW` fails on it. Children go in reverse name
  order, so `AFW_Flip` is gone before `AFW` is listed. (The builders only
  see such a phantom entry as a file with no image or video extension.)
  """
  for name in sorted(tf.io.gfile.listdir(url), reverse=True):
    child = f"{url}/{name.rstrip('/')}"
    if tf.io.gfile.isdir(child):
      remove_ram_tree(child)
    elif tf.io.gfile.exists(child):
      tf.io.gfile.remove(child)
  tf.io.gfile.rmtree(url)


@pytest.fixture
def ram_url():
  """A fresh, made `ram://` folder (ram:// lists only made folders),
  removed after the test."""
  url = f"ram://mgc_tf_test_{uuid.uuid4().hex}"
  tf.io.gfile.makedirs(url)
  yield url
  remove_ram_tree(url)


def dummy_data(name: str) -> str:
  return os.path.join(REPO, "tfds_builders", name, "dummy_data")


def build(name: str, config: str, manual_dir, data_dir, beam_options=None):
  """Builds tfds_builders/<name> from `manual_dir`; returns the builder."""
  module = importlib.import_module(
      f"tfds_builders.{name}.{name}_dataset_builder")
  builder = module.Builder(data_dir=str(data_dir), config=config)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, beam_options=beam_options))
  return builder


def read_all(builder):
  """{split: [(tfds_id, example)]} in stored order: equal ids in equal
  order mean equal keys (TFDS orders and shards examples by key hash)."""
  read_config = tfds.ReadConfig(add_tfds_id=True)
  return {split: [(ex.pop("tfds_id"), ex) for ex in tfds.as_numpy(
      builder.as_dataset(split=split, shuffle_files=False,
                         read_config=read_config))]
          for split in builder.info.splits}


def assert_same_examples(expected, actual):
  assert expected.keys() == actual.keys()
  for split in expected:
    assert [i for i, _ in expected[split]] == [i for i, _ in actual[split]]
    for (tfds_id, a), (_, b) in zip(expected[split], actual[split]):
      assert a.keys() == b.keys(), tfds_id
      for feature in a:
        np.testing.assert_array_equal(a[feature], b[feature],
                                      err_msg=f"{tfds_id} {feature}")


def reports(builder, root: str):
  """{split: {role: summary}}, with the manual folder written as ROOT (the
  skip reports' examples name the files they skipped)."""
  return {split: {role: tally.summary().replace(root, "ROOT")
                  for role, tally in roles.items()}
          for split, roles in builder.tallies.items()}


# The filesystem itself, in this TensorFlow version.


def test_ram_filesystem_reads_what_local_reads(ram_url, tmp_path):
  folder = tmp_path / "f"
  (folder / "a" / "b").mkdir(parents=True)
  (folder / "a" / "b" / "x.txt").write_text("1 2\n")
  (folder / "top.jpg").write_bytes(b"\xff")
  copy_to_ram(str(folder), ram_url)
  assert sorted(files.listdir(ram_url)) == ["a", "top.jpg"]
  assert files.isdir(f"{ram_url}/a") and not files.isfile(f"{ram_url}/a")
  assert files.isfile(f"{ram_url}/a/b/x.txt")
  assert files.getsize(f"{ram_url}/a/b/x.txt") == 4
  assert sorted((folder, sorted(subs), sorted(names)) for folder, subs, names
                in files.walk(ram_url)) == [
                    (ram_url, ["a"], ["top.jpg"]),
                    (f"{ram_url}/a", ["b"], []),
                    (f"{ram_url}/a/b", [], ["x.txt"])]
  with files.open_file(f"{ram_url}/a/b/x.txt", "r") as f:
    assert f.read() == "1 2\n"
  assert files.relative_path(f"{ram_url}/a/b/x.txt", ram_url) == "a/b/x.txt"
  with pytest.raises(FileNotFoundError, match="missing.txt"):
    files.read_bytes(f"{ram_url}/missing.txt")
  with pytest.raises(ValueError, match="mode='w'"):
    files.open_file(f"{ram_url}/a/b/x.txt", "w")


def test_local_copy_of_a_url_is_removed_after_use(ram_url, tmp_path,
                                                  monkeypatch):
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  with tf.io.gfile.GFile(f"{ram_url}/clip.mp4", "wb") as f:
    f.write(b"video bytes")
  with files.local_copy(f"{ram_url}/clip.mp4") as local:
    assert local.startswith(str(tmp_path)) and local.endswith(".mp4")
    with open(local, "rb") as f:
      assert f.read() == b"video bytes"
  assert os.listdir(tmp_path) == []
  local_file = str(tmp_path / "x.mp4")
  with files.local_copy(local_file) as local:
    assert local == local_file


def test_readers_read_urls_as_local_paths(ram_url):
  """Image, landmark and .mat readers: same arrays from both copies, and
  a missing remote file is the same skip reason as a missing local one."""
  local_root = dummy_data("folder_multiview")
  copy_to_ram(local_root, ram_url)
  for relative in ("alice/a_0.jpg", "alice/a_1.jpg", "bob/session1/b_0.jpg"):
    local, remote = (os.path.join(local_root, relative),
                     f"{ram_url}/{relative}")
    np.testing.assert_array_equal(read_image_rgb(local),
                                  read_image_rgb(remote))
    local_marks = annotations.find_landmark_file(local)
    remote_marks = annotations.find_landmark_file(remote)
    assert files.relative_path(remote_marks, ram_url) == files.relative_path(
        local_marks, local_root)
    np.testing.assert_array_equal(annotations.read_landmark_file(local_marks),
                                  annotations.read_landmark_file(remote_marks))
  w300_root = dummy_data("w300_lp")
  copy_to_ram(w300_root, f"{ram_url}/w300")
  relative = "300W_LP/AFW/AFW_111_1_0.mat"
  local_mat = annotations.read_mat(os.path.join(w300_root, relative))
  remote_mat = annotations.read_mat(f"{ram_url}/w300/{relative}")
  assert local_mat.keys() == remote_mat.keys()
  for key in local_mat:
    np.testing.assert_array_equal(local_mat[key], remote_mat[key])
  for reader, reason in ((read_image_rgb, "unreadable image"),
                         (annotations.read_mat, "unreadable mat file"),
                         (annotations.read_landmarks_txt,
                          "unreadable landmarks")):
    with pytest.raises(BadExampleError) as error:
      reader(f"{ram_url}/nothing/here.x")
    assert error.value.reason == reason


def test_video_reader_decodes_a_url_from_a_removed_local_copy(
    ram_url, tmp_path, monkeypatch):
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  local_root = dummy_data("video_folder")
  copy_to_ram(local_root, ram_url)
  local_entries = video_io.find_videos(local_root)
  remote_entries = video_io.find_videos(ram_url)
  assert [(e.relative_path, e.identity, e.video_id) for e in remote_entries
          ] == [(e.relative_path, e.identity, e.video_id)
                for e in local_entries]
  assert remote_entries[0].path == f"{ram_url}/alice/talk.mp4"
  with video_io.VideoReader(local_entries[0].path) as video:
    local_frames = [frame for _, frame in video.frames()]
  with video_io.VideoReader(remote_entries[0].path) as video:
    remote_frames = [frame for _, frame in video.frames()]
    assert len(os.listdir(tmp_path)) == 1  # the local copy, while open
  assert os.listdir(tmp_path) == []
  assert len(remote_frames) == len(local_frames) > 0
  for local_frame, remote_frame in zip(local_frames, remote_frames):
    np.testing.assert_array_equal(local_frame, remote_frame)
  track = video_io.find_landmark_file(remote_entries[0].path)
  assert track == f"{ram_url}/alice/talk_landmarks.txt"
  np.testing.assert_array_equal(
      video_io.read_video_landmarks(track),
      video_io.read_video_landmarks(
          video_io.find_landmark_file(local_entries[0].path)))
  with pytest.raises(BadExampleError, match="could not be opened"):
    video_io.VideoReader(f"{ram_url}/dave/broken.mp4")
  assert os.listdir(tmp_path) == []
  with pytest.raises(FileNotFoundError, match="does not exist"):
    video_io.find_videos(f"{ram_url}/nothing")


def test_missing_remote_manual_dir_is_refused_like_a_local_one(tmp_path):
  missing = f"ram://mgc_tf_test_{uuid.uuid4().hex}/celeba"
  with pytest.raises(manual_dir_lib.ManualDirError) as error:
    build("celeba", "default", RamPath(missing), tmp_path / "data")
  assert f"the folder {missing} does not exist" in error.value.line
  assert "\n" not in error.value.line
  assert not (tmp_path / "data").exists()


# Whole builds: local dummy data against its ram:// copy.

# builder -> the config built.
BUILDS = {
    "celeba": "default",
    "video_folder": "default",
    "folder_multiview": "default",
    "w300_lp": "with_flips",
    "multipie": "default",
}
# All but w300_lp detect some landmarks with dlib.
NEEDS_DLIB = {"celeba", "video_folder", "folder_multiview", "multipie"}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_build_from_ram_equals_build_from_local(name, ram_url, tmp_path,
                                                monkeypatch):
  if name in NEEDS_DLIB:
    pytest.importorskip("dlib")
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
  (tmp_path / "tmp").mkdir()
  local_root = dummy_data(name)
  copy_to_ram(local_root, ram_url)
  local = build(name, BUILDS[name], local_root, tmp_path / "local")
  remote = build(name, BUILDS[name], RamPath(ram_url), tmp_path / "remote")
  assert_same_examples(read_all(local), read_all(remote))
  assert reports(remote, ram_url) == reports(local, local_root)
  # Videos were decoded from local copies, all removed again (TFDS keeps
  # files of its own there).
  assert [left for left in os.listdir(tmp_path / "tmp")
          if left.startswith("mgc_tf_")] == []


@pytest.mark.parametrize("name", ["celeba", "video_folder"])
def test_beam_build_from_ram_equals_plain_build_from_local(name, ram_url,
                                                           tmp_path):
  """The Beam path: units pickled with their URLs, read by the workers.
  The workers run in this process (`in_memory`): a ram:// folder exists in
  one process only, whereas every worker process can open a gs:// one."""
  beam = pytest.importorskip("apache_beam")
  pytest.importorskip("dlib")
  copy_to_ram(dummy_data(name), ram_url)
  local = build(name, BUILDS[name], dummy_data(name), tmp_path / "local")
  options = beam.options.pipeline_options.PipelineOptions(flags=[
      f"--runner={beam_build.LOCAL_RUNNER}", "--direct_num_workers=1",
      "--direct_running_mode=in_memory"])
  remote = build(name, BUILDS[name], RamPath(ram_url), tmp_path / "remote",
                 beam_options=options)
  assert remote.uses_beam
  assert_same_examples(read_all(local), read_all(remote))
  assert reports(remote, ram_url) == reports(local, dummy_data(name))
