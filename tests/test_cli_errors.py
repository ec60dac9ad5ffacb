"""Command-line errors of evaluate, export, infer and train: one line, exit 2.

Each case runs the real command in a subprocess and checks what a user
sees: exit status 2, one line on stderr that starts with "error:", no
traceback, and nothing created. Also: a SIGTERM during start-up exits 0
with one line. (Issue 13, failure 7.)
"""

import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _run(module, *args, cwd=None):
  return subprocess.run([sys.executable, "-m", f"mgc_tf.{module}", *args],
                        env=ENV, capture_output=True, text=True, timeout=300,
                        cwd=cwd or REPO)


def _listing(root):
  """Every path below root (to show that nothing was created)."""
  return sorted(os.path.join(folder, name)
                for folder, folders, files in os.walk(root)
                for name in folders + files)


def _assert_one_error_line(result, *fragments):
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith("error: "), lines[0]
  for fragment in fragments:
    assert fragment in lines[0], (fragment, lines[0])
  return lines[0]


@pytest.fixture
def blocker(tmp_path):
  """A regular file where a folder would have to be (unwritable even for
  root)."""
  path = tmp_path / "blocker"
  path.write_text("a file, not a folder")
  return path


def _evaluate_cases(model_dir, tmp_path, blocker):
  data_dir = str(tmp_path / "data")
  json_path = str(tmp_path / "out.json")
  return {
      "misspelled dataset": (
          ["--dataset=synthetic_multiveiw/tiny", f"--data_dir={data_dir}",
           f"--output_json={json_path}"],
          ["unknown dataset 'synthetic_multiveiw'",
           "did you mean 'synthetic_multiview'?"]),
      "misspelled synthetic config": (
          ["--dataset=synthetic_multiview/tinny", f"--data_dir={data_dir}",
           f"--output_json={json_path}"],
          ["has no config 'tinny'", "did you mean 'tiny'",
           "default, small, tiny"]),
      "manual dataset not built": (
          ["--dataset=aflw2000_3d", f"--data_dir={data_dir}",
           f"--output_json={json_path}"],
          ["'aflw2000_3d' is not prepared",
           "tfds build tfds_builders/aflw2000_3d", "--manual_dir="]),
      "missing checkpoint": (
          ["--dataset=synthetic_multiview/tiny", f"--data_dir={data_dir}",
           f"--checkpoint={model_dir}/ckpt-999",
           f"--output_json={json_path}"],
          [f"checkpoint {model_dir}/ckpt-999 not found", "ckpt-7"]),
      "unwritable output_json": (
          ["--dataset=synthetic_multiview/tiny", f"--data_dir={data_dir}",
           f"--output_json={blocker}/results/out.json"],
          ["--output_json=", f"{blocker} is a file, not a folder"]),
  }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["misspelled dataset",
                                  "misspelled synthetic config",
                                  "manual dataset not built",
                                  "missing checkpoint",
                                  "unwritable output_json"])
def test_evaluate_errors(case, trained_model_dir, tmp_path, blocker):
  args, fragments = _evaluate_cases(trained_model_dir, tmp_path,
                                    blocker)[case]
  before, run_before = _listing(tmp_path), _listing(trained_model_dir)
  result = _run("evaluate", f"--model_dir={trained_model_dir}", *args)
  _assert_one_error_line(result, *fragments)
  # Nothing built, no JSON, no folder: checked before any work.
  assert "Evaluating" not in result.stdout
  assert _listing(tmp_path) == before
  assert _listing(trained_model_dir) == run_before


@pytest.mark.slow
def test_export_errors(trained_model_dir, tmp_path, blocker):
  before = _listing(tmp_path)
  missing = _run("export", f"--model_dir={trained_model_dir}",
                 f"--export_dir={tmp_path / 'export'}",
                 f"--checkpoint={trained_model_dir}/ckpt-999")
  _assert_one_error_line(missing, "ckpt-999 not found")
  unwritable = _run("export", f"--model_dir={trained_model_dir}",
                    f"--export_dir={blocker}/export")
  _assert_one_error_line(unwritable, "--export_dir=",
                         f"{blocker} is a file, not a folder")
  assert _listing(tmp_path) == before


@pytest.mark.slow
def test_infer_errors(trained_model_dir, tmp_path, blocker):
  photo = tmp_path / "photo.png"
  import numpy as np  # pylint: disable=g-import-not-at-top
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.imwrite(str(photo), np.zeros([64, 64, 3], np.uint8))
  before = _listing(tmp_path)
  missing = _run("infer", f"--input={photo}",
                 f"--output_dir={tmp_path / 'out'}",
                 f"--model_dir={trained_model_dir}",
                 f"--checkpoint={trained_model_dir}/ckpt-999")
  _assert_one_error_line(missing, "ckpt-999 not found")
  unwritable = _run("infer", f"--input={photo}",
                    f"--output_dir={blocker}/out",
                    f"--model_dir={trained_model_dir}")
  _assert_one_error_line(unwritable, "--output_dir=",
                         f"{blocker} is a file, not a folder")
  assert _listing(tmp_path) == before


@pytest.mark.slow
def test_train_misspelled_dataset_is_one_line(tmp_path):
  # train.py turns the library's DatasetError (a ValueError) into exit 2.
  result = _run("train", f"--model_dir={tmp_path / 'run'}",
                "--dataset=synthetic_multiveiw/tiny",
                f"--data_dir={tmp_path / 'data'}", "--image_size=64",
                "--batch_size=1", "--max_steps=1")
  _assert_one_error_line(result, "did you mean 'synthetic_multiview'?")
  assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_train_on_another_face_models_dataset_is_one_line(tmp_path):
  """ict_tiny is rendered from the ICT model; the default run's model is
  another: refused before the first step, with the flag that fixes it."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.data import prepare
  # Built here: a build's progress bars would go to the command's stderr.
  prepare.ensure_synthetic("synthetic_multiview/ict_tiny",
                           str(tmp_path / "data"))
  result = _run("train", f"--model_dir={tmp_path / 'run'}",
                "--dataset=synthetic_multiview/ict_tiny",
                "--eval_dataset=", f"--data_dir={tmp_path / 'data'}",
                "--face_model=embedded-synthetic-v1", "--image_size=64",
                "--batch_size=1", "--max_steps=1", "--backbone=resnet18")
  _assert_one_error_line(result, "'embedded-ict-light-v1'",
                         "--face_model=embedded-ict-light-v1")
  assert not list((tmp_path / "run").glob("ckpt-*"))


@pytest.mark.slow
def test_sigterm_during_start_up_exits_0_with_one_line(trained_model_dir,
                                                       tmp_path):
  export_dir = tmp_path / "export"
  process = subprocess.Popen(
      [sys.executable, "-m", "mgc_tf.export",
       f"--model_dir={trained_model_dir}", f"--export_dir={export_dir}"],
      env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  time.sleep(1.5)  # importing TensorFlow takes longer
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 0, stderr[-3000:]
  assert "Traceback" not in stderr
  assert "mgc_tf.export: stopped by SIGTERM before it finished; no version "\
      "was written" in stderr
  assert not os.path.exists(export_dir / "mgc" / "7")


@pytest.mark.slow
def test_train_sigterm_during_start_up_exits_0_with_one_line(tmp_path):
  """Before training starts (TensorFlow loading, data, model) a SIGTERM
  exits 0 with one line; nothing is trained, nothing is locked."""
  model_dir = tmp_path / "run"
  process = subprocess.Popen(
      [sys.executable, "-m", "mgc_tf.train", f"--model_dir={model_dir}",
       "--dataset=synthetic_multiview/tiny", f"--data_dir={tmp_path / 'd'}",
       "--eval_dataset=", "--backbone=resnet18", "--image_size=64",
       "--batch_size=2", "--max_steps=2"],
      env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  time.sleep(1.5)  # importing TensorFlow takes longer
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 0, stderr[-3000:]
  assert "Traceback" not in stderr
  assert "mgc_tf.train: stopped by SIGTERM before it finished" in stderr
  assert not list(model_dir.glob("ckpt-*"))
  assert not (model_dir / "train.lock").exists()


@pytest.mark.slow
def test_tfds_build_without_manual_dir_is_one_line(tmp_path):
  """`tfds build` of a manual dataset with no files: exit 2, one error line
  (beside TFDS's own INFO logging), and no dataset or download folders."""
  tfds_command = os.path.join(os.path.dirname(sys.executable), "tfds")
  command = ([tfds_command] if os.path.exists(tfds_command) else
             [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main"])
  data_dir = tmp_path / "data"
  result = subprocess.run(
      command + ["build", "tfds_builders/celeba", f"--data_dir={data_dir}"],
      env=ENV, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines()
            if line.startswith("error: ")]
  assert len(errors) == 1, result.stderr[-3000:]
  assert "docs/datasets/celeba.md" in errors[0]
  assert "--manual_dir=" in errors[0]
  assert not data_dir.exists()


@pytest.mark.parametrize("module,args,fragment", [
    ("train", ["--model_dir=unused", "--rasterizer=opengl"],
     "--rasterizer=opengl: value should be one of <auto|kernel|xla>"),
    ("infer", ["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    ("train", [], "--model_dir"),
])
def test_bad_flags_are_one_line_and_exit_2(module, args, fragment, tmp_path):
  """absl's own 'FATAL Flags parsing error' (two lines, exit 1) is replaced
  by mgc_tf._flags for every command."""
  result = _run(module, *args, cwd=str(tmp_path))
  _assert_one_error_line(result, fragment)
  assert _listing(str(tmp_path)) == []
