"""dlib's face-recognition ResNet in Keras: reader, cache, features, exactness.

The exactness tests cut chips with dlib's own `get_face_chip` (5-point
predictor) from real photos that ship in packages (scikit-image's astronaut,
matplotlib's grace_hopper.jpg, upscaled scikit-image LFW faces) and from a
render of the embedded face model, and compare the Keras descriptor with
`dlib.face_recognition_model_v1.compute_face_descriptor` on the same chip.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from mgc_tf.models import dlib_format
from mgc_tf.models import dlib_models
from mgc_tf.models import dlib_resnet

dlib = pytest.importorskip("dlib")
cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

MAX_ABS_DIFF = 1e-4
MIN_COSINE = 0.9999
NUM_LFW_FACES = 12  # upscaled LFW faces dlib detects, of the subset's 100
LFW_SCALE = 8       # 25 px -> 200 px, plus a replicated 50 px border
LFW_BORDER = 50


@pytest.fixture(scope="module")
def dat_path():
  try:
    return dlib_resnet.find_dat_path()
  except dlib_resnet.FaceEmbeddingDependencyError as e:
    pytest.skip(str(e))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("face_embedding_cache"))
  old = os.environ.get(dlib_resnet.CACHE_ENV_VAR)
  os.environ[dlib_resnet.CACHE_ENV_VAR] = path
  yield path
  if old is None:
    del os.environ[dlib_resnet.CACHE_ENV_VAR]
  else:
    os.environ[dlib_resnet.CACHE_ENV_VAR] = old


@pytest.fixture(scope="module")
def model(dat_path, cache_dir):
  del cache_dir
  return dlib_resnet.load_dlib_resnet(dat_path)


@pytest.fixture(scope="module")
def network(dat_path):
  return dlib_format.read_network_file(dat_path)


def test_reader_reads_every_layer_of_the_file(network):
  loss, layers = network
  assert loss["tag"] == "loss_metric_2"
  kinds = [layer.kind for layer in layers]
  assert kinds[0] == "input" and kinds[-1] == "fc"
  assert kinds.count("con") == 29 and kinds.count("affine") == 29
  assert kinds.count("add_prev") == 14 and kinds.count("max_pool") == 1
  np.testing.assert_allclose(layers[0].fields["mean_rgb"],
                             dlib_resnet.MEAN_RGB, atol=1e-4)
  stem = layers[1]
  assert stem.arrays["filters"].shape == (32, 3, 7, 7)
  assert (stem.fields["stride_y"], stem.fields["padding_y"]) == (2, 0)
  assert layers[-1].arrays["weights"].shape == (256, 128)
  total = sum(a.size for layer in layers for a in layer.arrays.values())
  assert 5.5e6 < total < 5.7e6


def test_reader_rejects_a_truncated_or_foreign_file(dat_path):
  with open(dat_path, "rb") as f:
    data = f.read()
  with pytest.raises(dlib_format.DlibFormatError, match="end of file"):
    dlib_format.read_network(data[:len(data) // 2])
  with pytest.raises(dlib_format.DlibFormatError, match="left after"):
    dlib_format.read_network(data + b"\x00")
  with pytest.raises(dlib_format.DlibFormatError):
    dlib_format.read_network(b"\x01\x01\x01\x05con_4" + data[20:])


def test_missing_package_names_the_extra(monkeypatch):
  monkeypatch.setattr(dlib_models.importlib.util, "find_spec",
                      lambda name: None)
  with pytest.raises(dlib_resnet.FaceEmbeddingDependencyError) as e:
    dlib_resnet.convert()
  assert 'pip install "mgc-tf[preprocess]"' in str(e.value)


def test_weights_are_cached_by_the_file_hash(model, dat_path, cache_dir):
  del model  # converted once already
  path = dlib_resnet.weights_path(dat_path)
  assert path.startswith(cache_dir) and os.path.isfile(path)
  with open(dat_path, "rb") as f:
    import hashlib  # pylint: disable=g-import-not-at-top
    digest = hashlib.sha256(f.read()).hexdigest()
  assert digest[:16] in path
  mtime = os.path.getmtime(path)
  assert dlib_resnet.convert(dat_path) == path
  assert os.path.getmtime(path) == mtime  # not converted again
  assert not [f for f in os.listdir(os.path.dirname(path))
              if f.endswith(".h5") and f != dlib_resnet.WEIGHTS_FILENAME]


def test_named_features_have_the_documented_shapes(model):
  features = dlib_resnet.feature_model(model)
  outputs = features(np.full([2, 150, 150, 3], 128.0, np.float32))
  shapes = {name: tuple(value.shape) for name, value in outputs.items()}
  assert shapes == {
      "stem": (2, 35, 35, 32), "stage32": (2, 35, 35, 32),
      "stage64": (2, 17, 17, 64), "stage128": (2, 8, 8, 128),
      "stage256": (2, 4, 4, 256), "stage256b": (2, 2, 2, 256),
      "pool": (2, 256), "embedding": (2, 128)}
  assert set(dlib_resnet.feature_names()) == set(shapes)
  np.testing.assert_allclose(outputs["embedding"],
                             model(np.full([2, 150, 150, 3], 128.0,
                                           np.float32)), atol=1e-6)
  with pytest.raises(ValueError, match="Received: names"):
    dlib_resnet.feature_model(model, ["conv1"])
  assert not model.trainable_weights


def _lfw_faces(detector, count):
  """Upscaled LFW faces (RGB uint8) and their detections, the first `count`."""
  faces = []
  for grey in skimage_data.lfw_subset()[:100]:  # the first 100 are faces
    image = cv2.resize((grey * 255).round().astype(np.uint8), None,
                       fx=LFW_SCALE, fy=LFW_SCALE,
                       interpolation=cv2.INTER_CUBIC)
    image = cv2.copyMakeBorder(image, *[LFW_BORDER] * 4, cv2.BORDER_REPLICATE)
    image = np.ascontiguousarray(np.repeat(image[..., None], 3, axis=-1))
    detections = detector(image, 0)
    if len(detections):
      faces.append((image, detections[0]))
    if len(faces) == count:
      break
  return faces


def _rendered_faces():
  """Two renders of the embedded face model (mean and a random identity)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import decoder as face_decoder  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import loaders  # pylint: disable=g-import-not-at-top
  from mgc_tf.render import renderer  # pylint: disable=g-import-not-at-top
  decoder = face_decoder.FaceDecoder(loaders.load_face_model("embedded-synthetic-v1"))
  slices = decoder.layout.slices()
  coeffs = np.zeros([2, decoder.layout.size], np.float32)
  identity = slices["identity"]
  coeffs[1, identity] = np.random.default_rng(3).standard_normal(
      identity.stop - identity.start)
  coeffs[:, slices["lighting"].start] = 0.8
  background = tf.fill([2, 224, 224, 3], 0.5)
  _, output = renderer.render_face(decoder, tf.constant(coeffs),
                                   background=background)
  images = np.clip(output.image.numpy(), 0, 1) * 255
  return [np.ascontiguousarray(i) for i in images.round().astype(np.uint8)]


@pytest.fixture(scope="module")
def dlib_chips(dat_path):
  """{source: [(image, 5-point shape, chip)]} cut by dlib."""
  models_dir = os.path.dirname(dat_path)
  detector = dlib.get_frontal_face_detector()
  predictor = dlib.shape_predictor(
      os.path.join(models_dir, "shape_predictor_5_face_landmarks.dat"))
  import matplotlib  # pylint: disable=g-import-not-at-top
  hopper = cv2.cvtColor(cv2.imread(os.path.join(
      matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")),
                        cv2.COLOR_BGR2RGB)
  sources = {"astronaut": [skimage_data.astronaut()], "grace_hopper": [hopper],
             "render": _rendered_faces()}
  found = {}
  for name, images in sources.items():
    found[name] = []
    for image in images:
      detections = detector(image, 1)
      assert len(detections), f"dlib finds no face in {name}"
      found[name].append((image, detections[0]))
  found["lfw"] = _lfw_faces(detector, NUM_LFW_FACES)
  chips = {}
  for name, items in found.items():
    chips[name] = []
    for image, detection in items:
      shape = predictor(image, detection)
      chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
      chips[name].append((image, shape, chip))
  return chips


def test_enough_chips_of_each_source(dlib_chips):
  counts = {name: len(items) for name, items in dlib_chips.items()}
  assert counts["lfw"] >= 10, counts
  assert counts["astronaut"] == counts["grace_hopper"] == 1
  assert counts["render"] >= 1


def test_keras_descriptor_equals_dlibs(model, dat_path, dlib_chips):
  recognizer = dlib.face_recognition_model_v1(dat_path)
  worst_diff, worst_cosine = 0.0, 1.0
  for name, items in dlib_chips.items():
    chips = np.stack([chip for _, _, chip in items]).astype(np.float32)
    ours = model(chips).numpy().astype(np.float64)
    for (image, shape, chip), mine in zip(items, ours):
      theirs = np.array(recognizer.compute_face_descriptor(chip))
      # The image + shape overload cuts the same chip (padding 0.25, no
      # jitter by default).
      np.testing.assert_array_equal(
          theirs, np.array(recognizer.compute_face_descriptor(image, shape)))
      diff = np.abs(mine - theirs).max()
      cosine = mine @ theirs / np.linalg.norm(mine) / np.linalg.norm(theirs)
      assert diff <= MAX_ABS_DIFF, (name, diff)
      assert cosine >= MIN_COSINE, (name, cosine)
      worst_diff, worst_cosine = max(worst_diff, diff), min(worst_cosine,
                                                            cosine)
  print(f"max abs diff {worst_diff:.3g}, min cosine {worst_cosine:.9f}")


def test_descriptors_tell_people_apart(model, dlib_chips):
  """A check that could fail for a wrong network: different people are far."""
  a = model(dlib_chips["astronaut"][0][2][None].astype(np.float32))[0]
  b = model(dlib_chips["grace_hopper"][0][2][None].astype(np.float32))[0]
  assert np.linalg.norm(np.asarray(a) - np.asarray(b)) > 0.6


@pytest.mark.slow
def test_ahead_of_time_command_prints_the_weights_path(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env[dlib_resnet.CACHE_ENV_VAR] = str(tmp_path)
  result = subprocess.run(
      [sys.executable, "-m", "mgc_tf.build_face_embedding"], env=env,
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  path = result.stdout.strip().splitlines()[-1]
  assert path.startswith(str(tmp_path)) and os.path.isfile(path)
  assert path.endswith(dlib_resnet.WEIGHTS_FILENAME)
