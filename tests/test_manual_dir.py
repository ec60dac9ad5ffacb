"""A build of a manual dataset without its files stops before writing
anything (issue 13, failure 7): `mgc_tf.data.manual_dir` and every builder
that mixes it in."""

import glob
import importlib
import os

import pytest
import tensorflow_datasets as tfds
from etils import epath

from mgc_tf.data import manual_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANUAL_BUILDERS = sorted(
    name for name in (
        os.path.basename(os.path.dirname(path)) for path in glob.glob(
            os.path.join(REPO, "tfds_builders", "*", "*_dataset_builder.py")))
    if issubclass(importlib.import_module(
        f"tfds_builders.{name}.{name}_dataset_builder").Builder,
                  manual_dir.ManualDirBuild))


def _builder(name, data_dir):
  module = importlib.import_module(
      f"tfds_builders.{name}.{name}_dataset_builder")
  return module.Builder(data_dir=str(data_dir))


def test_every_builder_that_reads_manual_dir_checks_it():
  readers = sorted(
      os.path.basename(os.path.dirname(path)) for path in glob.glob(
          os.path.join(REPO, "tfds_builders", "*", "*_dataset_builder.py"))
      if "dl_manager.manual_dir" in open(path).read())
  assert len(readers) == 7
  assert MANUAL_BUILDERS == readers


def test_resolve_manual_dir_follows_tfds_defaults(tmp_path):
  config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "m"))
  assert manual_dir.resolve_manual_dir("/d", None, config) == tmp_path / "m"
  assert manual_dir.resolve_manual_dir("/d", "/dl", None) == epath.Path(
      "/dl/manual")
  assert manual_dir.resolve_manual_dir(
      "/d", None, tfds.download.DownloadConfig()) == epath.Path(
          "/d/downloads/manual")


def test_manual_dir_problem_names_what_is_wrong(tmp_path):
  folder = epath.Path(tmp_path) / "manual"
  assert "does not exist" in manual_dir.manual_dir_problem(folder)
  folder.mkdir()
  assert "is empty" in manual_dir.manual_dir_problem(folder)
  (folder / "a.txt").write_text("x")
  assert manual_dir.manual_dir_problem(folder) is None
  assert manual_dir.manual_dir_problem(folder, ["a.txt", "b", "c"]) == (
      f"{folder} lacks b, c")


@pytest.mark.parametrize("name", MANUAL_BUILDERS)
def test_build_without_manual_files_raises_one_line_and_writes_nothing(
    name, tmp_path):
  data_dir = tmp_path / "data"
  with pytest.raises(manual_dir.ManualDirError) as error:
    _builder(name, data_dir).download_and_prepare()
  message = error.value.line
  assert "\n" not in message
  assert str(error.value).startswith(message + "\n\n")
  assert f"docs/datasets/{name}.md" in message
  assert f"tfds build tfds_builders/{name} --data_dir={data_dir}" in message
  assert os.path.isfile(os.path.join(REPO, "docs", "datasets", f"{name}.md"))
  assert not data_dir.exists()


def test_celeba_names_the_missing_files(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "identity_CelebA.txt").write_text("000001.jpg 1\n")
  with pytest.raises(manual_dir.ManualDirError,
                     match="lacks list_eval_partition.txt, img_align_celeba"):
    _builder("celeba", tmp_path / "data").download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  assert not (tmp_path / "data").exists()


def test_refused_build_keeps_what_was_there(tmp_path):
  data_dir = tmp_path / "data"
  (data_dir / "downloads" / "other.zip").parent.mkdir(parents=True)
  (data_dir / "downloads" / "other.zip").write_text("a user's download")
  (data_dir / "w300_lp").mkdir()
  with pytest.raises(manual_dir.ManualDirError, match="does not exist"):
    _builder("w300_lp", data_dir).download_and_prepare()
  assert sorted(p.relative_to(data_dir).as_posix()
                for p in data_dir.rglob("*")) == [
                    "downloads", "downloads/other.zip", "w300_lp"]
