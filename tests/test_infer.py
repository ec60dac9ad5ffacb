"""Tests for inference on images, folders and videos (mgc_tf.infer, .inference).

The model is the `trained_model_dir` fixture (resnet18 at 64 px, random
weights) run through a CheckpointPredictor; faces are found with dlib on
scikit-image's astronaut photo (512 x 512, one face, box about x 179-266,
y 83-170). The library is called directly; subprocesses run the infer CLI
once (bad input) and the export CLI once (the SavedModel test).
"""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mgc_tf.faces2d import preprocessing
from mgc_tf.inference import faces
from mgc_tf.inference import images
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.inference import smoothing
from mgc_tf.inference import sources
from mgc_tf.inference import video
from mgc_tf.io.bad_input import BadExampleError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VIDEO_FRAMES = 6
BLANK_FRAME = 3
VIDEO_SIZE = 200


def write_png(path, rgb):
  assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
  return str(path)


def read_png(path):
  return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def astronaut():
  data = pytest.importorskip("skimage.data")
  return data.astronaut()


@pytest.fixture(scope="module")
def predictor(trained_model_dir):
  return reconstructor_lib.Reconstructor.from_run(trained_model_dir)


@pytest.fixture(scope="module")
def finder():
  finder = faces.make_face_finder()
  assert not finder.aligned, "the preprocess extra is installed here"
  return finder


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, astronaut, predictor, finder):
  """infer_images on a folder: the astronaut, two astronaut heads side by
  side, a blank image, a broken file."""
  folder = tmp_path_factory.mktemp("photos")
  write_png(folder / "astronaut.png", astronaut)
  head = astronaut[0:320, 90:410]
  write_png(folder / "pair.png", np.concatenate([head, head[:, ::-1]], 1))
  write_png(folder / "blank.png", np.full([300, 400, 3], 128, np.uint8))
  (folder / "broken.jpg").write_bytes(b"not an image")
  (folder / "notes.txt").write_text("ignored")
  inputs = sources.resolve_input(str(folder))
  out = str(tmp_path_factory.mktemp("image_out"))
  lines = []
  result = images.infer_images(inputs.paths, out, predictor, finder,
                               batch_size=2, show_progress=False,
                               log=lines.append)
  return inputs, out, result, lines


def test_folder_run_counts_images_faces_and_skips(image_run):
  inputs, out, result, lines = image_run
  assert [os.path.basename(p) for p in inputs.paths] == [
      "astronaut.png", "blank.png", "broken.jpg", "pair.png"]
  assert inputs.kind == sources.InputKind.IMAGES
  assert result.faces == 3 and result.counter.kept == 2
  assert result.counter.counts == {"no face found": 1, "unreadable image": 1}
  with open(os.path.join(out, images.SUMMARY_FILE)) as f:
    summary = json.load(f)
  assert summary["images"] == 4 and summary["faces"] == 3
  assert summary["skipped"] == {"no face found": 1, "unreadable image": 1}
  assert any("blank.png: skipped (no face found" in line for line in lines)
  assert "3 faces written" in lines[-1]
  assert not any(name.startswith(("blank", "broken"))
                 for name in os.listdir(out))


def test_several_faces_in_one_image_are_indexed(image_run):
  _, out, _, _ = image_run
  names = sorted(n for n in os.listdir(out) if n.startswith("pair"))
  assert names == ["pair_face0.json", "pair_face0.npz", "pair_face0.obj",
                   "pair_face0_landmarks.txt", "pair_face1.json",
                   "pair_face1.npz", "pair_face1.obj",
                   "pair_face1_landmarks.txt", "pair_overlay.png"]
  boxes = [np.load(os.path.join(out, f"pair_face{k}.npz"))["box"]
           for k in (0, 1)]
  # One face in each half of the 640 px wide image.
  assert sorted(box[0] < 320 for box in boxes) == [False, True]
  overlay = read_png(os.path.join(out, "pair_overlay.png"))
  assert overlay.shape == (320, 640, 3)


def test_mesh_has_the_decoded_vertices_and_colours(image_run, predictor):
  trimesh = pytest.importorskip("trimesh")
  _, out, _, _ = image_run
  decoder = predictor.decoder
  arrays = np.load(os.path.join(out, "astronaut_face0.npz"))
  mesh = trimesh.load(os.path.join(out, "astronaut_face0.obj"),
                      process=False)
  face = decoder.decode(arrays["coefficients"][None], image_size=224)
  assert mesh.vertices.shape == (decoder.num_vertices, 3)
  assert len(mesh.faces) == decoder.triangles.shape[0]
  np.testing.assert_allclose(mesh.vertices, face.vertices.numpy()[0],
                             atol=1e-3)
  np.testing.assert_array_equal(mesh.faces, decoder.triangles.numpy())
  expected = np.round(np.clip(face.colors.numpy()[0], 0, 1) * 255)
  np.testing.assert_allclose(mesh.visual.vertex_colors[:, :3], expected,
                             atol=1)
  # Camera space: the face is in front of the camera, about tz away.
  assert np.all(mesh.vertices[:, 2] > 0)
  assert abs(mesh.vertices[:, 2].mean() - arrays["translation"][2]) < 200


def test_npz_and_json_hold_coefficients_pose_and_landmarks(
    image_run, predictor, astronaut):
  _, out, _, _ = image_run
  layout = predictor.decoder.layout
  arrays = np.load(os.path.join(out, "astronaut_face0.npz"))
  assert arrays["coefficients"].shape == (layout.size,)
  for name, size in zip(layout.names, layout.sizes):
    assert arrays[f"coefficients_{name}"].shape == (size,)
  for key, shape in [("pose", (6,)), ("rotation", (3, 3)),
                     ("translation", (3,)), ("landmarks_3d", (68, 3)),
                     ("landmarks_2d", (68, 2)), ("landmarks_2d_crop", (68, 2)),
                     ("detected_landmarks", (68, 2)),
                     ("crop_transform", (2, 3)), ("intrinsics", (3, 3))]:
    assert arrays[key].shape == shape, key
  # The full pose is the predicted offset plus the model's default pose.
  np.testing.assert_allclose(
      arrays["pose"],
      arrays["coefficients_pose"] + predictor.decoder.default_pose.numpy(),
      atol=1e-5)
  # Original-pixel landmarks go forward through the crop transform onto the
  # crop-pixel ones.
  transform = arrays["crop_transform"]
  forward = arrays["landmarks_2d"] @ transform[:, :2].T + transform[:, 2]
  np.testing.assert_allclose(forward, arrays["landmarks_2d_crop"], atol=1e-2)
  # The detected landmarks are dlib's, in the original image's pixels.
  detection = preprocessing.default_landmarker().detect(astronaut)[0]
  np.testing.assert_allclose(arrays["detected_landmarks"],
                             detection.landmarks, atol=1e-2)
  # The model's landmarks, mapped back, land on the face (its box +- 60 px).
  x0, y0, x1, y1 = detection.box
  points = arrays["landmarks_2d"]
  assert np.all((points[:, 0] > x0 - 60) & (points[:, 0] < x1 + 60))
  assert np.all((points[:, 1] > y0 - 60) & (points[:, 1] < y1 + 60))
  text = np.loadtxt(os.path.join(out, "astronaut_face0_landmarks.txt"))
  np.testing.assert_allclose(text, points, atol=1e-3)

  with open(os.path.join(out, "astronaut_face0.json")) as f:
    doc = json.load(f)
  assert doc["image_size_hw"] == [512, 512] and doc["face_index"] == 0
  rad, deg = doc["pose"]["rotation_rad"], doc["pose"]["rotation_deg"]
  np.testing.assert_allclose([rad["rz"], rad["ry"], rad["rx"]],
                             arrays["pose"][:3], atol=1e-6)
  np.testing.assert_allclose([deg["rz"], deg["ry"], deg["rx"]],
                             np.degrees(arrays["pose"][:3]), atol=1e-4)
  t = doc["pose"]["translation_mm"]
  np.testing.assert_allclose([t["tx"], t["ty"], t["tz"]],
                             arrays["pose"][3:], atol=1e-3)
  for name, size in zip(layout.names, layout.sizes):
    np.testing.assert_allclose(doc["coefficients"][name],
                               arrays[f"coefficients_{name}"], atol=1e-6)
  np.testing.assert_allclose(doc["landmarks_2d"], points, atol=0.01)
  assert set(doc["files"]) == {"mesh", "npz", "json", "landmarks"}


def test_overlay_changes_the_image_only_on_the_face(image_run, astronaut):
  _, out, _, _ = image_run
  overlay = read_png(os.path.join(out, "astronaut_overlay.png"))
  assert overlay.shape == astronaut.shape
  arrays = np.load(os.path.join(out, "astronaut_face0.npz"))
  # Original pixels whose crop position lies inside the 224 crop (+1 px for
  # bilinear reach) or within a landmark dot may change; nothing else.
  transform = arrays["crop_transform"]
  changed = np.any(overlay != astronaut, axis=-1)
  rows, cols = np.nonzero(changed)
  pixels = np.stack([cols, rows], -1).astype(np.float64)
  crop_xy = pixels @ transform[:, :2].T + transform[:, 2]
  allowed = np.all((crop_xy > -1.5) & (crop_xy < 224.5), axis=1)
  for points in (arrays["landmarks_2d"], arrays["detected_landmarks"]):
    distance = np.linalg.norm(pixels[:, None] - points[None], axis=-1)
    allowed |= distance.min(1) <= 4.0
  assert np.all(allowed), pixels[~allowed][:5]
  # The rendered face covers a good part of the detected box.
  x0, y0, x1, y1 = np.round(arrays["box"]).astype(int)
  assert changed[y0:y1, x0:x1].mean() > 0.5


@pytest.fixture(scope="module")
def video_run(tmp_path_factory, astronaut, predictor, finder):
  """A 6-frame MJPG clip of the astronaut's head drifting right; frame 3 is
  blank grey (no face)."""
  folder = tmp_path_factory.mktemp("video")
  path = str(folder / "clip.avi")
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0,
                           (VIDEO_SIZE, VIDEO_SIZE))
  assert writer.isOpened()
  frames = []
  for i in range(VIDEO_FRAMES):
    x0 = 100 + 3 * i
    frame = cv2.resize(astronaut[0:300, x0:x0 + 300],
                       (VIDEO_SIZE, VIDEO_SIZE), interpolation=cv2.INTER_AREA)
    if i == BLANK_FRAME:
      frame = np.full_like(frame, 128)
    frames.append(frame)
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()
  out = str(folder / "out")
  config = smoothing.SmoothingConfig(method="window", window=3)
  result = video.infer_video(path, out, predictor, finder,
                             smoothing_config=config, batch_size=4,
                             mesh_every=2, show_progress=False,
                             log=lambda line: None)
  return path, out, result, np.stack(frames)


def test_video_writes_per_frame_arrays_with_raw_and_smoothed(video_run,
                                                             predictor):
  _, out, result, _ = video_run
  assert result.frames == VIDEO_FRAMES
  assert result.frames_with_face == VIDEO_FRAMES - 1
  assert result.skipped == {"no face found": 1}
  arrays = np.load(os.path.join(out, "clip.npz"))
  valid = np.arange(VIDEO_FRAMES) != BLANK_FRAME
  np.testing.assert_array_equal(arrays["has_face"], valid)
  k = predictor.decoder.layout.size
  e = predictor.decoder.layout.exp_rank
  for key, shape in [("coefficients_raw", (k,)), ("coefficients", (k,)),
                     ("pose_raw", (6,)), ("pose", (6,)),
                     ("expression_raw", (e,)), ("expression", (e,)),
                     ("landmarks_2d", (68, 2)), ("landmarks_2d_raw", (68, 2)),
                     ("detected_landmarks", (68, 2)),
                     ("crop_transform", (2, 3))]:
    assert arrays[key].shape == (VIDEO_FRAMES,) + shape, key
    assert np.all(np.isnan(arrays[key][BLANK_FRAME])), key
    assert np.all(np.isfinite(arrays[key][valid])), key
  # Smoothed = centred mean over the 3-frame window's frames with a face;
  # the full pose is the offset plus a constant, so it averages the same.
  for raw_key, key in (("pose_raw", "pose"),
                       ("expression_raw", "expression")):
    raw = arrays[raw_key].astype(np.float64)
    for t in np.flatnonzero(valid):
      window = [s for s in (t - 1, t, t + 1)
                if 0 <= s < VIDEO_FRAMES and valid[s]]
      np.testing.assert_allclose(arrays[key][t], raw[window].mean(0),
                                 rtol=1e-5, atol=1e-5)
  assert not np.allclose(arrays["pose"][valid], arrays["pose_raw"][valid])
  np.testing.assert_allclose(arrays["time_s"], np.arange(VIDEO_FRAMES) / 10)

  with open(os.path.join(out, "clip.json")) as f:
    doc = json.load(f)
  assert doc["frames"] == VIDEO_FRAMES and doc["fps"] == 10.0
  assert len(doc["per_frame"]) == VIDEO_FRAMES
  assert doc["per_frame"][BLANK_FRAME]["pose"] is None
  np.testing.assert_allclose(
      doc["per_frame"][0]["pose_raw"]["rotation_deg"]["ry"],
      np.degrees(arrays["pose_raw"][0, 1]), atol=1e-4)
  # Meshes of every 2nd frame that has a face: 0, 2, 4.
  meshes = sorted(n for n in os.listdir(out) if n.endswith(".obj"))
  assert meshes == ["clip_frame000000.obj", "clip_frame000002.obj",
                    "clip_frame000004.obj"]


class _RefinedTexturePredictor:
  """The trained predictor plus a refined-texture output, as a robust model
  has: each crop's mean colour on every vertex (so frames differ)."""

  def __init__(self, predictor):
    self._predictor = predictor
    self.given = []

  def __getattr__(self, name):
    return getattr(self._predictor, name)

  def predict(self, images):
    out = dict(self._predictor.predict(images))
    colours = np.asarray(images, np.float32).mean(axis=(1, 2))  # [B, 3]
    v = self._predictor.decoder.num_vertices
    out["albedo_refined"] = np.repeat(colours[:, None], v, axis=1)
    self.given.append(out["albedo_refined"][:, 0])
    return out


def test_video_of_a_refined_texture_model_shades_every_frame_with_its_mean(
    video_run, predictor, finder, tmp_path):
  """A model with a refined texture: the .npz holds the mean of its
  per-frame outputs over the frames with a face, and the meshes are that
  texture shaded with their own frame's lighting."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import shading
  import tensorflow as tf
  path = video_run[0]
  refined = _RefinedTexturePredictor(predictor)
  video.infer_video(path, str(tmp_path), refined, finder,
                    smoothing_config=smoothing.SmoothingConfig(
                        method="window", window=3),
                    batch_size=4, mesh_every=2, show_progress=False,
                    log=lambda line: None)
  given = np.concatenate(refined.given)  # [frames with a face, 3]
  assert len(given) == VIDEO_FRAMES - 1
  assert not np.allclose(given[0], given[-1])
  arrays = np.load(tmp_path / "clip.npz")
  mean = arrays["albedo_refined"]
  assert mean.shape == (predictor.decoder.num_vertices, 3)
  np.testing.assert_allclose(mean, np.broadcast_to(given.mean(0), mean.shape),
                             rtol=1e-5)
  face = predictor.decoder.decode(arrays["coefficients"][[0]], image_size=224)
  expected = np.clip(shading.sh_shade(tf.constant(mean[None]), face.normals,
                                      face.lighting).numpy()[0], 0, 1)
  colours = np.array([[float(x) for x in line.split()[4:7]]
                      for line in open(tmp_path / "clip_frame000000.obj")
                      if line.startswith("v ")])
  np.testing.assert_allclose(colours, expected, atol=2e-3)
  # The video run without the output has no such array.
  assert "albedo_refined" not in np.load(os.path.join(video_run[1],
                                                      "clip.npz"))


def test_overlay_video_has_every_frame(video_run):
  _, _, result, frames = video_run
  overlay_path = [f for f in result.files if "_overlay" in f][0]
  capture = cv2.VideoCapture(overlay_path)
  assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
  written = []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    written.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  capture.release()
  assert len(written) == VIDEO_FRAMES
  written = np.stack(written).astype(np.float64)
  assert written.shape[1:] == (VIDEO_SIZE, VIDEO_SIZE, 3)
  # The blank frame passes through (up to two lossy codecs, which shift a
  # flat grey by a few levels); the others have the rendered face
  # composited over the middle of the frame.
  error = np.abs(written - frames.astype(np.float64)).mean(axis=(1, 2, 3))
  assert error[BLANK_FRAME] < 6.0
  centre = (slice(60, 120), slice(70, 130))
  face_error = np.abs(written[:, centre[0], centre[1]] -
                      frames[:, centre[0], centre[1]]).mean(axis=(1, 2, 3))
  assert np.all(np.delete(face_error, BLANK_FRAME) > 10.0)


def test_aligned_crops_skip_detection(tmp_path, astronaut, predictor):
  crop = preprocessing.preprocess_face(astronaut).image  # 224 x 224
  path = write_png(tmp_path / "crop.png", crop)
  wide = write_png(tmp_path / "wide.png", astronaut[:, :300])
  finder = faces.make_face_finder(aligned=True)
  assert finder.aligned
  result = images.infer_images([path, wide], str(tmp_path / "out"),
                               predictor, finder, show_progress=False,
                               log=lambda line: None)
  assert result.faces == 1
  assert result.counter.counts == {"not a square crop": 1}
  arrays = np.load(str(tmp_path / "out" / "crop_face0.npz"))
  np.testing.assert_allclose(arrays["crop_transform"],
                             [[1, 0, 0], [0, 1, 0]], atol=1e-12)
  np.testing.assert_allclose(arrays["landmarks_2d"],
                             arrays["landmarks_2d_crop"], atol=1e-4)
  assert "detected_landmarks" not in arrays
  assert read_png(tmp_path / "out" / "crop_overlay.png").shape == (224, 224,
                                                                  3)


def test_aligned_crop_of_another_size_maps_back_to_it():
  image = np.zeros([112, 112, 3], np.uint8)
  crop = faces.aligned_crop(image)
  assert crop.image.shape == (224, 224, 3)
  # The corners of the 112 image (continuous extent) map onto the 224 crop's.
  corners = np.array([[-0.5, -0.5], [111.5, 111.5]])
  mapped = corners @ crop.transform[:, :2].T + crop.transform[:, 2]
  np.testing.assert_allclose(mapped, [[-0.5, -0.5], [223.5, 223.5]])
  with pytest.raises(BadExampleError, match="not a square crop"):
    faces.aligned_crop(np.zeros([100, 120, 3], np.uint8))


def test_without_dlib_inputs_are_taken_as_aligned(monkeypatch):
  def missing(**unused_kwargs):
    raise preprocessing.PreprocessDependencyError("No module named 'dlib'")
  monkeypatch.setattr(preprocessing, "FaceLandmarker", missing)
  lines = []
  finder = faces.make_face_finder(log=lines.append)
  assert finder.aligned
  assert len(lines) == 1
  assert "aligned to the 224 template" in lines[0]
  assert preprocessing.INSTALL_COMMAND in lines[0]


def test_resolve_input_names_the_path_and_what_is_accepted(tmp_path):
  text = tmp_path / "notes.txt"
  text.write_text("x")
  broken = tmp_path / "broken.png"
  broken.write_bytes(b"nope")
  broken_video = tmp_path / "broken.mp4"
  broken_video.write_bytes(b"nope")
  empty = tmp_path / "empty"
  empty.mkdir()
  for path, message in [(text, "unknown extension '.txt'"),
                        (broken, "cannot be read"),
                        (broken_video, "cannot be read"),
                        (empty, "folder without image files"),
                        (tmp_path / "missing.jpg", "does not exist")]:
    with pytest.raises(sources.InferenceInputError) as info:
      sources.resolve_input(str(path))
    assert str(path) in str(info.value) and message in str(info.value)
    assert ".jpg" in str(info.value) and ".mp4" in str(info.value)


@pytest.mark.slow
def test_cli_reports_a_missing_input(tmp_path, trained_model_dir):
  missing = str(tmp_path / "no_such_photo.jpg")
  result = subprocess.run(
      [sys.executable, "-m", "mgc_tf.infer", f"--input={missing}",
       f"--output_dir={tmp_path / 'out'}", f"--model_dir={trained_model_dir}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  # Bad input: exit 2, one line, no traceback, nothing created.
  assert result.returncode == 2
  assert f"error: {missing} does not exist" in result.stderr
  assert "a video file (.mp4" in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_exported_saved_model_gives_the_checkpoint_results(
    tmp_path, trained_model_dir, astronaut, predictor):
  export_dir = tmp_path / "export"
  exported = subprocess.run(
      [sys.executable, "-m", "mgc_tf.export",
       f"--model_dir={trained_model_dir}", f"--export_dir={export_dir}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert exported.returncode == 0, exported.stderr[-3000:]
  (version_dir,) = (export_dir / "mgc").iterdir()
  saved = reconstructor_lib.Reconstructor.from_saved_model(str(version_dir))
  assert saved.image_size == predictor.image_size
  crop = preprocessing.preprocess_face(astronaut).image
  finder = faces.make_face_finder(aligned=True)
  outs = {}
  for name, model in (("saved", saved), ("checkpoint", predictor)):
    path = write_png(tmp_path / f"{name}.png", crop)
    result = images.infer_images([path], str(tmp_path / "out"), model,
                                 finder, show_progress=False,
                                 log=lambda line: None)
    assert result.faces == 1
    outs[name] = np.load(str(tmp_path / "out" / f"{name}_face0.npz"))
  np.testing.assert_allclose(outs["saved"]["coefficients"],
                             outs["checkpoint"]["coefficients"], atol=1e-5)
  np.testing.assert_allclose(outs["saved"]["landmarks_2d"],
                             outs["checkpoint"]["landmarks_2d"], atol=1e-2)
