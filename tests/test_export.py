"""SavedModel export for TF Serving: mgc_tf.serving, mgc_tf.export, launch/serving.

One export of the `trained_model_dir` run (resnet18, 64 px, step 7) is
written by the CLI in a subprocess and shared by the tests. References are
the Keras model of `Reconstructor.from_run` plus `FaceDecoder.decode`.
"""

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf.serving import export_lib
from mgc_tf.inference import reconstructor as reconstructor_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVING_DIR = os.path.join(REPO, "launch", "serving")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
SIZE = 64  # the fixture run's image_size
STEP = 7  # and its checkpoint step
FOUR_OUTPUTS = ("coefficients", "pose", "landmarks_2d", "landmarks_3d")


def _load_script(name: str):
  """Imports launch/serving/<name>.py as a module."""
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(SERVING_DIR, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _smooth_image(size: int, seed: int) -> np.ndarray:
  """uint8 [size, size, 3]: smooth random colours (JPEG-friendly)."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(0, 255, [1, 6, 6, 3]).astype(np.float32)
  image = tf.image.resize(coarse, [size, size], method="bicubic")[0]
  return np.clip(image.numpy(), 0, 255).astype(np.uint8)


def _to_float(encoded: bytes) -> tf.Tensor:
  """Decoded as the training pipeline (and the export) decode crops."""
  return tf.image.convert_image_dtype(
      tf.io.decode_image(encoded, channels=3, expand_animations=False),
      tf.float32)


def _run_cli(*args):
  return subprocess.run([sys.executable, "-m", "mgc_tf.export", *args],
                        env=ENV, capture_output=True, text=True, timeout=300,
                        cwd=REPO)


@pytest.fixture(scope="module")
def jpeg64():
  return tf.io.encode_jpeg(_smooth_image(SIZE, 1), quality=90).numpy()


@pytest.fixture(scope="module")
def png96():
  return tf.io.encode_png(_smooth_image(96, 2)).numpy()


@pytest.fixture(scope="module")
def export(trained_model_dir, tmp_path_factory):
  """The CLI's export: export_dir, version path, the CLI's stdout."""
  export_dir = str(tmp_path_factory.mktemp("export"))
  result = _run_cli(f"--model_dir={trained_model_dir}",
                    f"--export_dir={export_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  return types.SimpleNamespace(
      export_dir=export_dir, path=os.path.join(export_dir, "mgc", str(STEP)),
      stdout=result.stdout)


@pytest.fixture(scope="module")
def restored(trained_model_dir):
  return reconstructor_lib.Reconstructor.from_run(trained_model_dir)


@pytest.fixture(scope="module")
def loaded(export):
  return tf.saved_model.load(export.path)


def _reference(restored, images, sides):
  """Keras model + decoder on [B, S, S, 3]; landmarks_2d for crops `sides`."""
  coefficients = restored.model(images, training=False)
  face = restored.decoder.decode(coefficients, image_size=SIZE)
  landmarks_2d = np.concatenate([
      restored.decoder.decode(coefficients[i:i + 1], image_size=side)
      .landmarks_2d.numpy() for i, side in enumerate(sides)])
  return {"coefficients": coefficients.numpy(), "pose": face.pose.numpy(),
          "landmarks_2d": landmarks_2d,
          "landmarks_3d": face.landmarks_3d.numpy(),
          "vertices": face.vertices.numpy(),
          "colors": np.clip(face.colors.numpy(), 0.0, 1.0)}


@pytest.mark.slow
def test_cli_writes_the_version_and_refuses_to_overwrite(export,
                                                         trained_model_dir):
  for name in ("saved_model.pb", "variables", export_lib.METADATA_FILE,
               export_lib.TRIANGLES_FILE):
    assert os.path.exists(os.path.join(export.path, name)), name
  assert f"Exported {export.path}" in export.stdout
  assert f"step {STEP}" in export.stdout
  for text in ("serving_default: image_bytes string[-1]",
               "predict_images: images float32[-1, -1, -1, 3]",
               "predict_vertices", "coefficients float32[-1, 257]"):
    assert text in export.stdout, text
  model_path = os.path.dirname(export.path)
  pb = os.path.join(export.path, "saved_model.pb")
  before = os.stat(pb).st_mtime_ns

  # Same run, same (default) version: refused, before the model is built.
  again = _run_cli(f"--model_dir={trained_model_dir}",
                   f"--export_dir={export.export_dir}")
  assert again.returncode == 2
  assert f"mgc/{STEP} already exists" in again.stderr
  assert "--overwrite" in again.stderr
  assert f"--version={STEP + 1}" in again.stderr
  assert os.stat(pb).st_mtime_ns == before
  # Nothing half-written left beside the version.
  assert os.listdir(model_path) == [str(STEP)]


@pytest.mark.slow
def test_metadata_and_triangles(export, restored):
  with open(os.path.join(export.path, export_lib.METADATA_FILE)) as f:
    meta = json.load(f)
  decoder = restored.decoder
  k, v = decoder.layout.size, decoder.num_vertices
  assert meta["image_size"] == SIZE
  assert meta["num_coefficients"] == k
  assert meta["face_model"] is None  # the embedded model
  assert meta["face_model_name"] == decoder.face_model.name
  assert meta["backbone"] == "resnet18"
  assert meta["step"] == STEP and meta["version"] == STEP
  assert meta["checkpoint"] == restored.checkpoint_path
  assert meta["crop_size"] == 224
  assert meta["coefficient_layout"] == {
      name: [s.start, s.stop] for name, s in decoder.layout.slices().items()}
  signatures = meta["signatures"]
  assert set(signatures) == {"serving_default", "predict_images",
                             "predict_vertices"}
  shapes = {"coefficients": [-1, k], "pose": [-1, 6],
            "landmarks_2d": [-1, 68, 2], "landmarks_3d": [-1, 68, 3]}
  assert signatures["serving_default"]["inputs"]["image_bytes"]["shape"] == [-1]
  assert signatures["serving_default"]["inputs"]["image_bytes"]["dtype"] == (
      "string")
  for name in ("serving_default", "predict_images"):
    outputs = signatures[name]["outputs"]
    assert {key: o["shape"] for key, o in outputs.items()} == shapes
  assert signatures["predict_images"]["inputs"]["images"]["shape"] == [
      -1, -1, -1, 3]
  assert {key: o["shape"] for key, o in
          signatures["predict_vertices"]["outputs"].items()} == {
              "vertices": [-1, v, 3], "colors": [-1, v, 3]}
  triangles = np.load(os.path.join(export.path, export_lib.TRIANGLES_FILE))
  assert triangles.dtype == np.int32
  np.testing.assert_array_equal(triangles, decoder.face_model.triangles)
  assert meta["num_triangles"] == len(triangles)


_LOAD_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

path, jpeg_file, png_file, out_file = sys.argv[1:]
loaded = tf.saved_model.load(path)
data = [open(jpeg_file, "rb").read(), open(png_file, "rb").read()]
outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(data))
image = tf.image.convert_image_dtype(tf.io.decode_image(
    data[0], channels=3, expand_animations=False), tf.float32)[None]
floats = loaded.signatures["predict_images"](images=image)
vertices = loaded.signatures["predict_vertices"](images=image)
arrays = {k: v.numpy() for k, v in outputs.items()}
arrays.update({"images_" + k: v.numpy() for k, v in floats.items()})
arrays.update({k: v.numpy() for k, v in vertices.items()})
np.savez(out_file, **arrays)

proto = saved_model_pb2.SavedModel()
with open(path + "/saved_model.pb", "rb") as f:
  proto.ParseFromString(f.read())
ops = set()
for graph in proto.meta_graphs:
  ops |= {node.op for node in graph.graph_def.node}
  for function in graph.graph_def.library.function:
    ops |= {node.op for node in function.node_def}
modules = sorted(m for m in sys.modules if m.split(".")[0] == "mgc_tf")
print(json.dumps({"ops": sorted(ops), "mgc_tf_modules": modules}))
"""


@pytest.mark.slow
def test_loads_without_mgc_tf_and_matches_keras(export, restored, jpeg64,
                                                png96, tmp_path):
  jpeg_file, png_file = tmp_path / "a.jpg", tmp_path / "b.png"
  jpeg_file.write_bytes(jpeg64)
  png_file.write_bytes(png96)
  out_file = tmp_path / "out.npz"
  # -I: no PYTHONPATH, no user site; cwd outside the repository.
  result = subprocess.run(
      [sys.executable, "-I", "-c", _LOAD_SCRIPT, export.path, str(jpeg_file),
       str(png_file), str(out_file)],
      env=ENV, capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["mgc_tf_modules"] == []
  assert not [op for op in report["ops"] if "Rasterize" in op]
  assert "DecodeImage" in report["ops"]  # the list is the real graph's
  got = dict(np.load(out_file))

  # Reference: the JPEG as is (64 = S, no resize) and the 96 px PNG resized
  # to S as the training pipeline resizes crops; landmarks in each crop.
  png_resized = tf.image.resize(_to_float(png96)[None], [SIZE, SIZE],
                                antialias=True)
  images = tf.concat([_to_float(jpeg64)[None], png_resized], 0)
  want = _reference(restored, images, sides=[SIZE, 96])
  for name in FOUR_OUTPUTS:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5,
                               err_msg=name)
    # The float signature on the decoded JPEG equals the bytes signature.
    np.testing.assert_allclose(got["images_" + name], want[name][:1],
                               rtol=1e-5, atol=1e-5, err_msg=name)
  for name in ("vertices", "colors"):
    np.testing.assert_allclose(got[name], want[name][:1], rtol=1e-5,
                               atol=1e-5, err_msg=name)
  assert got["colors"].min() >= 0.0 and got["colors"].max() <= 1.0


@pytest.mark.slow
def test_saved_model_cli_lists_the_signatures(export):
  tool = shutil.which("saved_model_cli")
  command = ([tool] if tool else
             [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"])
  result = subprocess.run(command + ["show", "--dir", export.path, "--all"],
                          env=ENV, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  blocks = {block.split("'")[0]: block
            for block in result.stdout.split("signature_def['")[1:]}
  expected = {
      "serving_default": (["image_bytes"], FOUR_OUTPUTS),
      "predict_images": (["images"], FOUR_OUTPUTS),
      "predict_vertices": (["images"], ("vertices", "colors")),
  }
  for name, (inputs, outputs) in expected.items():
    assert name in blocks, result.stdout[:2000]
    for key in inputs:
      assert f"inputs['{key}']" in blocks[name]
    for key in outputs:
      assert f"outputs['{key}']" in blocks[name]
  assert "DT_STRING" in blocks["serving_default"]


@pytest.mark.slow
def test_other_crop_sizes_are_resized_and_landmarks_scale(loaded, restored):
  images = tf.image.convert_image_dtype(_smooth_image(128, 3), tf.float32)
  out = loaded.signatures["predict_images"](images=images[None])
  resized = tf.image.resize(images[None], [SIZE, SIZE], antialias=True)
  np.testing.assert_allclose(out["coefficients"],
                             restored.model(resized, training=False),
                             rtol=1e-5, atol=1e-5)
  # landmarks_2d: pixels of the 128 crop = the camera of a 128 crop.
  face = restored.decoder.decode(out["coefficients"], image_size=128)
  np.testing.assert_allclose(out["landmarks_2d"], face.landmarks_2d,
                             rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(out["landmarks_3d"], face.landmarks_3d,
                             rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_bad_image_bytes_name_the_input(loaded, jpeg64):
  serve = loaded.signatures["serving_default"]
  non_square = tf.io.encode_png(np.zeros([64, 48, 3], np.uint8)).numpy()
  cases = [
      ([b"not an image at all"], r"image_bytes\[0\]: neither a JPEG nor"),
      ([jpeg64, b"GIF89a..."], r"image_bytes\[1\]: a GIF image"),
      # A JPEG header, truncated body.
      ([jpeg64[:200]], r"image_bytes\[0\]: the JPEG/PNG data cannot be"),
      ([jpeg64, non_square],
       r"image_bytes\[1\]: images must be square.*\[64 48 3\]"),
      ([], "image_bytes must hold at least one"),
  ]
  for data, message in cases:
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
      serve(image_bytes=tf.constant(data, tf.string))


@pytest.mark.slow
@pytest.mark.parametrize("shape", [[1, SIZE, SIZE, 4], [2, SIZE, 32, 3],
                                   [SIZE, SIZE, 3], [0, SIZE, SIZE, 3],
                                   [SIZE]])
def test_bad_float_images_name_the_input(loaded, shape):
  received = " ".join(str(d) for d in shape)
  for name in ("predict_images", "predict_vertices"):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=(r"images must be float32 \[B, H, H, 3\].*"
                              rf"Received shape:\] \[{received}\]")):
      loaded.signatures[name](images=tf.zeros(shape))


@pytest.mark.slow
def test_rest_request_body_runs_through_the_signature(loaded, jpeg64, png96):
  rest = _load_script("rest_client")
  body = json.loads(rest.build_predict_request(image_bytes=[jpeg64, png96]))
  assert body["signature_name"] == "serving_default"
  assert [set(instance) for instance in body["instances"]] == [{"b64"}] * 2
  # What TF Serving does with row-format {"b64": ...} instances.
  fed = [base64.b64decode(instance["b64"]) for instance in body["instances"]]
  got = loaded.signatures["serving_default"](image_bytes=tf.constant(fed))
  direct = loaded.signatures["serving_default"](
      image_bytes=tf.constant([jpeg64, png96]))
  for name in FOUR_OUTPUTS:
    np.testing.assert_array_equal(got[name], direct[name])

  # A row-format response as TF Serving writes it, parsed back.
  response = json.dumps({"predictions": [
      {name: got[name][i].numpy().tolist() for name in FOUR_OUTPUTS}
      for i in range(2)]})
  parsed = rest.parse_predict_response(response)
  assert set(parsed) == set(FOUR_OUTPUTS)
  for name in FOUR_OUTPUTS:
    np.testing.assert_array_equal(parsed[name], got[name])

  images = _to_float(jpeg64)[None].numpy()
  body = json.loads(rest.build_predict_request(
      images=images, signature_name="predict_images"))
  fed = np.asarray(body["instances"], np.float32)
  np.testing.assert_array_equal(fed, images)
  assert (rest.predict_url("http://h:8501/", "mgc", 7) ==
          "http://h:8501/v1/models/mgc/versions/7:predict")
  with pytest.raises(RuntimeError, match="images must be"):
    rest.parse_predict_response('{"error": "images must be float32"}')


@pytest.mark.slow
def test_grpc_request_runs_through_the_signature(loaded, jpeg64):
  pytest.importorskip("tensorflow_serving.apis.predict_pb2")
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  grpc_client = _load_script("grpc_client")
  request = grpc_client.build_predict_request([jpeg64, jpeg64],
                                              model_name="mgc", version=STEP)
  assert request.model_spec.name == "mgc"
  assert request.model_spec.signature_name == "serving_default"
  assert request.model_spec.version.value == STEP
  tensor = request.inputs["image_bytes"]
  assert tensor.dtype == tf.string.as_datatype_enum
  fed = tf.make_ndarray(tensor)
  assert list(fed) == [jpeg64, jpeg64]
  got = loaded.signatures["serving_default"](image_bytes=tf.constant(fed))
  direct = loaded.signatures["serving_default"](
      image_bytes=tf.constant([jpeg64, jpeg64]))
  np.testing.assert_array_equal(got["coefficients"], direct["coefficients"])

  response = predict_pb2.PredictResponse()
  for name in FOUR_OUTPUTS:
    response.outputs[name].CopyFrom(tf.make_tensor_proto(got[name]))
  parsed = grpc_client.parse_predict_response(response)
  for name in FOUR_OUTPUTS:
    np.testing.assert_array_equal(parsed[name], got[name])

  images = grpc_client.decode_images([jpeg64])
  request = grpc_client.build_predict_request(
      images=images, signature_name="predict_vertices")
  vertices = loaded.signatures["predict_vertices"](
      images=tf.make_ndarray(request.inputs["images"]))
  assert vertices["vertices"].shape[0] == 1


@pytest.mark.slow
def test_saved_model_predictor_reads_the_export(export, restored):
  saved = reconstructor_lib.Reconstructor.from_saved_model(export.path)
  assert saved.image_size == SIZE
  assert saved.decoder.layout.size == restored.decoder.layout.size
  images = tf.image.convert_image_dtype(_smooth_image(SIZE, 4), tf.float32)
  np.testing.assert_allclose(
      saved.coefficients(images[None]),
      restored.model(images[None], training=False), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_launch_files():
  script = os.path.join(SERVING_DIR, "docker_run.sh")
  assert subprocess.run(["bash", "-n", script]).returncode == 0
  # Fails (before any docker call) on a missing export directory.
  missing = subprocess.run(["bash", script, "/nonexistent/export"],
                           capture_output=True, text=True)
  assert missing.returncode == 2 and "not a directory" in missing.stderr

  with open(os.path.join(SERVING_DIR, "models.config")) as f:
    models_config = f.read()
  yaml = pytest.importorskip("yaml")
  with open(os.path.join(SERVING_DIR, "kubernetes.yaml")) as f:
    documents = {d["kind"]: d for d in yaml.safe_load_all(f)}
  assert set(documents) == {"ConfigMap", "Deployment", "Service"}
  pod = documents["Deployment"]["spec"]["template"]
  container, = pod["spec"]["containers"]
  assert container["image"].startswith("tensorflow/serving")
  assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
  assert {p["port"] for p in documents["Service"]["spec"]["ports"]} == {
      8500, 8501}
  assert (documents["Service"]["spec"]["selector"].items() <=
          pod["metadata"]["labels"].items())

  config_pb2 = pytest.importorskip(
      "tensorflow_serving.config.model_server_config_pb2")
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  parsed = text_format.Parse(models_config, config_pb2.ModelServerConfig())
  model, = parsed.model_config_list.config
  assert (model.name, model.base_path, model.model_platform) == (
      "mgc", "/models/mgc", "tensorflow")
  in_k8s = text_format.Parse(documents["ConfigMap"]["data"]["models.config"],
                             config_pb2.ModelServerConfig())
  assert in_k8s == parsed


def test_export_argument_errors(trained_model_dir, tmp_path):
  for kwargs in ({"model_name": "a/b"}, {"model_name": ""},
                 {"version": -1}, {"version": True}):
    with pytest.raises(export_lib.ExportError):
      export_lib.export_saved_model(trained_model_dir, str(tmp_path), **kwargs)
  os.makedirs(tmp_path / "mgc" / "3")
  with pytest.raises(export_lib.ExportError, match=r"--version=4"):
    export_lib.export_saved_model(trained_model_dir, str(tmp_path), version=3)
  with pytest.raises(reconstructor_lib.TrainedModelError, match="model.json"):
    export_lib.export_saved_model(str(tmp_path / "no_run"), str(tmp_path))


def test_move_into_place_replaces_only_with_overwrite(tmp_path):
  target, staging = tmp_path / "5", tmp_path / ".tmp-5-x"
  for directory, name in ((target, "old"), (staging, "new")):
    os.makedirs(directory)
    (directory / name).write_text(name)
  with pytest.raises(export_lib.ExportError):
    export_lib._move_into_place(str(staging), str(target), overwrite=False)
  export_lib._move_into_place(str(staging), str(target), overwrite=True)
  assert os.listdir(target) == ["new"]
  assert sorted(os.listdir(tmp_path)) == ["5"]


def _fuzz_corpus(jpeg64: bytes, png96: bytes):
  """(good {name: bytes}, bad {name: bytes}): >= 50 malformed elements."""
  cv2 = pytest.importorskip("cv2")
  rng = np.random.default_rng(13)
  image = _smooth_image(SIZE, 5)

  def encode(ext, array=image):
    ok, data = cv2.imencode(ext, array[..., ::-1])
    assert ok, ext
    return data.tobytes()

  grey_jpeg = tf.io.encode_jpeg(image[..., :1]).numpy()
  rgba_png = tf.io.encode_png(np.concatenate(
      [image, np.full([SIZE, SIZE, 1], 200, np.uint8)], -1)).numpy()
  good = {"jpeg64": jpeg64, "png96": png96, "grey_jpeg": grey_jpeg,
          "rgba_png": rgba_png}
  bad = {}
  # Random bytes, many of them not UTF-8 from the first byte on.
  for length in (1, 2, 3, 5, 8, 13, 64, 1000, 100_000):
    bad[f"random_{length}"] = rng.integers(0, 256, length, np.uint8).tobytes()
  bad["random_ff_fe"] = b"\xff\xfe\x80\x81" + bytes(range(256))
  bad["random_high"] = bytes(range(128, 256)) * 4
  # Truncated JPEGs and PNGs: the magic alone, the header, parts of the body.
  for cut in (3, 4, 20, 100, 200, 0.25, 0.5, 0.75, 0.95):
    size = cut if isinstance(cut, int) else int(len(jpeg64) * cut)
    bad[f"jpeg_cut_{cut}"] = jpeg64[:size]
  for cut in (8, 12, 33, 60, 0.25, 0.5, 0.75, 0.95):
    size = cut if isinstance(cut, int) else int(len(png96) * cut)
    bad[f"png_cut_{cut}"] = png96[:size]
  bad["jpeg_magic_then_zeros"] = b"\xff\xd8\xff" + bytes(5000)
  bad["png_magic_then_random"] = (b"\x89PNG\r\n\x1a\n" +
                                  rng.integers(0, 256, 500, np.uint8).tobytes())
  # Other formats: refused by name (GIF, BMP, TIFF, WebP).
  bad["gif"] = encode(".gif") if cv2.haveImageWriter(".gif") else (
      b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00,\x00\x00"
      b"\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
  bad["gif87_header"] = b"GIF87a\x40\x00\x40\x00"
  bad["bmp"] = encode(".bmp")
  bad["bmp_cut"] = encode(".bmp")[:30]
  bad["tiff"] = encode(".tiff")
  bad["tiff_big_endian"] = b"MM\x00*" + bytes(100)
  bad["webp"] = encode(".webp")
  # Text: plain, UTF-8, JSON, HTML, and base64 of a JPEG (a client that
  # forgot to decode its b64 field).
  bad["text"] = b"not an image at all"
  bad["utf8_text"] = "visage \u00e9\u4e2d\u6587 \U0001f600".encode()
  bad["json"] = b'{"b64": "/9j/4AAQ"}'
  bad["html"] = b"<html><body>502 Bad Gateway</body></html>"
  bad["base64_jpeg"] = base64.b64encode(jpeg64)
  bad["whitespace"] = b" \n\t"
  bad["nul"] = b"\x00"
  bad["empty"] = b""
  # Huge: a long garbage string, a JPEG magic then megabytes of zeros, and
  # headers that announce enormous images.
  bad["huge_random"] = rng.integers(0, 256, 8 << 20, np.uint8).tobytes()
  bad["huge_jpeg_zeros"] = b"\xff\xd8\xff\xe0" + bytes(8 << 20)
  sof = jpeg64.find(b"\xff\xc0")
  assert sof > 0
  huge_jpeg = bytearray(jpeg64)
  huge_jpeg[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2
  bad["jpeg_claims_60000"] = bytes(huge_jpeg)
  huge_png = bytearray(png96)
  huge_png[16:24] = (100000).to_bytes(4, "big") * 2  # IHDR width, height
  bad["png_claims_100000"] = bytes(huge_png)
  # Decodable but not square crops.
  bad["png_not_square"] = tf.io.encode_png(image[:, :40]).numpy()
  bad["jpeg_not_square"] = tf.io.encode_jpeg(image[:48]).numpy()
  assert len(bad) >= 50, len(bad)
  return good, bad


_FUZZ_SCRIPT = r"""
import json, os, sys
import numpy as np
import tensorflow as tf

path, corpus_dir, out_file = sys.argv[1:]
serve = tf.saved_model.load(path).signatures["serving_default"]

def read(kind):
  folder = os.path.join(corpus_dir, kind)
  return {name: open(os.path.join(folder, name), "rb").read()
          for name in sorted(os.listdir(folder))}

good, bad = read("good"), read("bad")

def outcome(batch):
  try:
    serve(image_bytes=tf.constant(batch, tf.string))
    return "ok"
  except tf.errors.InvalidArgumentError as error:
    return "InvalidArgument: " + error.message
  except Exception as error:  # what must never happen
    return "%s: %s" % (type(error).__name__, str(error)[:300])

a_good = good["jpeg64"]
report = {name: [outcome([data]), outcome([a_good, data, a_good])]
          for name, data in bad.items()}
names = sorted(good)
outputs = serve(image_bytes=tf.constant([good[name] for name in names]))
np.savez(out_file, **{key: value.numpy() for key, value in outputs.items()})
modules = sorted(m for m in sys.modules if m.split(".")[0] == "mgc_tf")
print(json.dumps({"bad": report, "good_names": names,
                  "mgc_tf_modules": modules}))
"""


@pytest.mark.slow
def test_fuzzed_image_bytes_all_give_invalid_argument(export, restored,
                                                      jpeg64, png96,
                                                      tmp_path):
  good, bad = _fuzz_corpus(jpeg64, png96)
  corpus = tmp_path / "corpus"
  for kind, items in (("good", good), ("bad", bad)):
    (corpus / kind).mkdir(parents=True)
    for name, data in items.items():
      (corpus / kind / name).write_bytes(data)
  out_file = tmp_path / "good.npz"
  # One TensorFlow-only process (-I: no PYTHONPATH; cwd outside the repo).
  result = subprocess.run(
      [sys.executable, "-I", "-c", _FUZZ_SCRIPT, export.path, str(corpus),
       str(out_file)],
      env=ENV, capture_output=True, text=True, timeout=600, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["mgc_tf_modules"] == []

  wrong = {}
  for name, (alone, in_batch) in report["bad"].items():
    if not (alone.startswith("InvalidArgument: ") and
            "image_bytes[0]: " in alone):
      wrong[name + " alone"] = alone[:300]
    # In [good, bad, good]: the bad element's index, and only it.
    if not (in_batch.startswith("InvalidArgument: ") and
            "image_bytes[1]: " in in_batch and "1 of 3 elements" in in_batch):
      wrong[name + " in a batch"] = in_batch[:300]
  assert not wrong, json.dumps(wrong, indent=1)
  # Formats are refused by name, decodable non-square crops with the shape.
  for name, what in (("gif", "a GIF image"), ("bmp", "a BMP image"),
                     ("tiff", "a TIFF image"), ("webp", "a WebP image"),
                     ("text", "neither a JPEG nor a PNG"),
                     ("empty", "empty string"),
                     ("jpeg_cut_0.5", "cannot be decoded"),
                     ("png_cut_0.5", "cannot be decoded"),
                     ("png_not_square", f"[{SIZE} 40 3]")):
    assert what in report["bad"][name][0], (name, report["bad"][name][0])

  # Every good element gives the right answer, in one batch.
  got = dict(np.load(out_file))
  names = report["good_names"]
  decoded = [_to_float(good[name]) for name in names]
  sides = [int(image.shape[0]) for image in decoded]
  images = tf.concat([tf.image.resize(image[None], [SIZE, SIZE],
                                      antialias=True)
                      if image.shape[0] != SIZE else image[None]
                      for image in decoded], 0)
  want = _reference(restored, images, sides=sides)
  for name in FOUR_OUTPUTS:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5,
                               err_msg=name)
