"""The Keras reconstructor: backbones, head initialisation, weights, export.

Images are 64 x 64 so every backbone runs in a second on a CPU; ResNet50 is
built once for the module.
"""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mgc_tf.facemodel import coefficients as coefficients_lib
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import synthetic
from mgc_tf.models import backbones
from mgc_tf.models import reconstructor as reconstructor_lib

SIZE = 64
K = 45  # the tiny face model's layout: 5 + 3 + 4 + 6 + 27


def images(batch, size=SIZE, seed=0):
  """[batch, size, size, 3] float32 uniform in [0, 1]."""
  rng = np.random.default_rng(seed)
  return rng.uniform(size=[batch, size, size, 3]).astype(np.float32)


@pytest.fixture(scope="module")
def resnet50():
  """The one ResNet50 reconstructor of this module (random weights, seeded:
  the tests' tolerances must not depend on which tests ran before)."""
  keras.utils.set_random_seed(0)
  return reconstructor_lib.build_reconstructor(K, "resnet50", SIZE)


@pytest.fixture(scope="module")
def embedded_decoder():
  return face_decoder.FaceDecoder(synthetic.embedded_face_model())


@pytest.fixture
def mixed_precision_policy():
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_float16")
  yield
  keras.mixed_precision.set_global_policy(previous)


def perturb(model, seed=1):
  """Moves every variable (BN statistics included) away from its initial
  value so that a weights round trip cannot pass by re-initialisation."""
  rng = np.random.default_rng(seed)
  for variable in model.weights:
    value = variable.numpy()
    if "moving_variance" in variable.path:
      new = rng.uniform(0.5, 1.5, value.shape)
    else:
      new = value + rng.normal(0.0, 0.05, value.shape)
    variable.assign(new.astype(value.dtype))


# --- building ----------------------------------------------------------------


@pytest.mark.parametrize("name, features, params", [
    ("resnet50", 2048, 23.59e6),
    ("resnet18", 512, 11.19e6),
    ("mobilenet_v2", 1280, 2.258e6),
])
def test_backbones_build_with_their_sizes(name, features, params, resnet50):
  if name == "resnet50":
    model = resnet50
  else:
    model = reconstructor_lib.build_reconstructor(K, name, SIZE)
  backbone = reconstructor_lib.backbone_of(model)
  assert backbone.name == f"{name}_backbone"
  assert backbone.output_shape == (None, features)
  # BN moving statistics count, as in Keras' own summaries.
  assert abs(backbone.count_params() - params) / params < 0.005
  out = model(images(2))
  assert out.shape == (2, K) and out.dtype == tf.float32
  assert model.input_shape == (None, SIZE, SIZE, 3)
  assert model.output_names == ["coefficients"]
  assert model.inputs[0].name == "image"


def test_resnet18_is_resnet18():
  backbone = backbones.build_backbone("resnet18", SIZE)
  convs = [l for l in backbone.get_layer("resnet18").layers
           if isinstance(l, keras.layers.Conv2D)]
  # stem + 8 blocks x 2 convs + 3 projection shortcuts.
  assert len(convs) == 1 + 16 + 3
  # Stride 32 overall: 64 px -> a 2 x 2 map before pooling.
  assert backbone.get_layer("resnet18").get_layer(
      "conv5_block2_out").output.shape[1:3] == (2, 2)


def test_config_validation_names_the_choices():
  with pytest.raises(ValueError, match="resnet50, resnet18, mobilenet_v2"):
    reconstructor_lib.ReconstructorConfig(backbone="vgg16").validate()
  with pytest.raises(ValueError, match=">= 32"):
    reconstructor_lib.ReconstructorConfig(image_size=16).validate()
  with pytest.raises(ValueError, match="head_stddev"):
    reconstructor_lib.ReconstructorConfig(head_stddev=-1.0).validate()
  with pytest.raises(ValueError, match="backbone_weights"):
    reconstructor_lib.ReconstructorConfig(backbone_weights="").validate()
  with pytest.raises(ValueError, match="num_coefficients"):
    reconstructor_lib.build_reconstructor(0, "resnet18", SIZE)
  config = reconstructor_lib.ReconstructorConfig("mobilenet_v2", 96).validate()
  assert config.build(K).output_shape == (None, K)


# --- head initialisation ---------------------------------------------------


def test_head_starts_tiny_with_zero_bias():
  model = reconstructor_lib.build_reconstructor(K, "resnet18", SIZE,
                                                head_stddev=1e-3)
  head = model.get_layer("coefficients")
  kernel = head.kernel.numpy()
  assert kernel.shape == (512, K)
  assert 0.9e-3 < kernel.std() < 1.1e-3
  np.testing.assert_array_equal(head.bias.numpy(), 0.0)


@pytest.mark.parametrize("name", backbones.BACKBONES)
@pytest.mark.parametrize("training", [False, True])
def test_first_prediction_is_the_mean_face_at_the_default_pose(
    name, training, resnet50, embedded_decoder):
  layout = coefficients_lib.CoefficientLayout.from_face_model(
      embedded_decoder.face_model)
  assert layout.size == 257
  if name == "resnet50":
    # Same backbone as the module's model, with a 257-coefficient head.
    backbone = reconstructor_lib.backbone_of(resnet50)
    head = keras.layers.Dense(257, kernel_initializer=keras.initializers
                              .RandomNormal(stddev=1e-5, seed=0),
                              dtype="float32")
    predict = lambda x, training: head(backbone(x, training=training))
  else:
    predict = reconstructor_lib.build_reconstructor(257, name, SIZE)
  coefficients = predict(images(4), training=training)
  assert np.abs(coefficients).max() < 0.02
  first = embedded_decoder.decode(coefficients)
  mean = embedded_decoder.decode(tf.zeros([4, 257]))
  np.testing.assert_allclose(first.vertices, mean.vertices, atol=1.0)  # mm
  np.testing.assert_allclose(first.landmarks_2d, mean.landmarks_2d,
                             atol=0.5)  # px in the 224 crop
  np.testing.assert_allclose(first.pose[0], embedded_decoder.default_pose,
                             atol=0.02)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_one_step_trains_backbone_and_head(name):
  model = reconstructor_lib.build_reconstructor(K, name, SIZE)
  target = tf.constant(np.random.default_rng(3).normal(size=[4, K]),
                       tf.float32)
  x = images(4)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean((model(x, training=True) - target)**2)
  grads = tape.gradient(loss, model.trainable_variables)
  without = [v.path for v, g in zip(model.trainable_variables, grads)
             if g is None or not np.any(np.asarray(g))]
  assert not without, f"no gradient: {without[:5]}"
  before = [v.numpy() for v in model.trainable_variables]
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  unchanged = [v.path for v, b in zip(model.trainable_variables, before)
               if np.array_equal(v.numpy(), b)]
  assert not unchanged, f"not updated: {unchanged[:5]}"
  with tf.GradientTape():
    after = tf.reduce_mean((model(x, training=True) - target)**2)
  assert float(after) < float(loss)


def test_mixed_float16_keeps_input_processing_and_output_float32(
    mixed_precision_policy):
  model = reconstructor_lib.build_reconstructor(K, "resnet18", SIZE)
  backbone = reconstructor_lib.backbone_of(model)
  assert backbone.get_layer("resnet18").get_layer(
      "conv1_conv").compute_dtype == "float16"
  assert backbone.get_layer("preprocess").compute_dtype == "float32"
  assert model.get_layer("coefficients").compute_dtype == "float32"
  for training in (False, True):
    out = model(images(2), training=training)
    assert out.dtype == tf.float32
    assert np.all(np.isfinite(out))
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model(images(2), training=True)**2)
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g.dtype == tf.float32 and np.all(np.isfinite(g)) for g in grads)


# --- preprocessing inside the model ------------------------------------------


def test_resnet50_preprocessing_matches_keras(resnet50):
  backbone = reconstructor_lib.backbone_of(resnet50)
  bare = backbone.get_layer("resnet50")  # the keras.applications network
  x = images(2)
  ours = backbone(x)
  theirs = bare(keras.applications.resnet50.preprocess_input(x * 255.0))
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
  # The comparison can fail: RGB instead of BGR gives other features.
  wrong = bare(keras.applications.resnet50.preprocess_input(
      x[..., ::-1] * 255.0))
  assert np.abs(np.asarray(ours) - np.asarray(wrong)).max() > 1e-3


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocessing_layer_matches_imagenet_utils(mode):
  x = images(2, size=8)
  ours = backbones.ImagePreprocessing(mode)(x)
  theirs = keras.applications.imagenet_utils.preprocess_input(
      x * 255.0, mode=mode)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name, keras_preprocess", [
    ("resnet50", keras.applications.resnet50.preprocess_input),
    ("mobilenet_v2", keras.applications.mobilenet_v2.preprocess_input),
    ("resnet18", lambda x: keras.applications.imagenet_utils.preprocess_input(
        x, mode="torch")),
])
def test_each_backbone_preprocesses_as_its_weights_expect(
    name, keras_preprocess, resnet50):
  if name == "resnet50":
    backbone = reconstructor_lib.backbone_of(resnet50)
  else:
    backbone = backbones.build_backbone(name, SIZE)
  x = images(2, size=8)
  np.testing.assert_allclose(backbone.get_layer("preprocess")(x),
                             keras_preprocess(x * 255.0), rtol=1e-5,
                             atol=1e-4)


# --- weights -----------------------------------------------------------------


def test_weights_path_round_trip_from_backbone_and_reconstructor(tmp_path):
  source = reconstructor_lib.build_reconstructor(K, "resnet18", SIZE)
  perturb(source)
  x = images(2)
  expected = reconstructor_lib.backbone_of(source)(x)

  backbone_file = str(tmp_path / "backbone.weights.h5")
  reconstructor_lib.backbone_of(source).save_weights(backbone_file)
  loaded = backbones.build_backbone("resnet18", SIZE, weights=backbone_file)
  np.testing.assert_allclose(loaded(x), expected, rtol=1e-5, atol=1e-6)

  # A whole reconstructor's file: its backbone part is found and loaded, the
  # head starts afresh (here exact zeros, so the output is zero).
  model_file = str(tmp_path / "model.weights.h5")
  source.save_weights(model_file)
  fresh = reconstructor_lib.build_reconstructor(
      K, "resnet18", SIZE, backbone_weights=model_file, head_stddev=0.0)
  np.testing.assert_allclose(reconstructor_lib.backbone_of(fresh)(x),
                             expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(fresh(x), 0.0)
  # Another head size (another face model) takes the same backbone weights.
  other = reconstructor_lib.build_reconstructor(
      257, "resnet18", SIZE, backbone_weights=model_file)
  np.testing.assert_allclose(reconstructor_lib.backbone_of(other)(x),
                             expected, rtol=1e-5, atol=1e-6)


def test_weights_that_do_not_fit_give_a_clear_error(tmp_path):
  path = str(tmp_path / "resnet18.weights.h5")
  backbones.build_backbone("resnet18", SIZE).save_weights(path)
  with pytest.raises(backbones.BackboneWeightsError) as error:
    backbones.build_backbone("mobilenet_v2", SIZE, weights=path)
  message = str(error.value)
  assert path in message and "mobilenet_v2_backbone" in message
  assert "arrays" in message and "missing from the file" in message
  with pytest.raises(backbones.BackboneWeightsError, match="not found"):
    backbones.build_backbone("resnet18", SIZE,
                             weights=str(tmp_path / "no.weights.h5"))
  with pytest.raises(backbones.BackboneWeightsError, match=r"\.weights\.h5"):
    backbones.build_backbone("resnet18", SIZE,
                             weights=str(tmp_path / "legacy.h5"))


@pytest.mark.parametrize("name, size, file_name", [
    ("resnet50", SIZE, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("mobilenet_v2", SIZE,
     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    ("mobilenet_v2", 96,
     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"),
])
def test_imagenet_without_network_says_what_to_fetch(
    name, size, file_name, monkeypatch, tmp_path):
  requested = []

  def no_network(fname=None, origin=None, **kwargs):
    del kwargs
    requested.append((fname, origin))
    # What keras.utils.get_file raises when the URL cannot be reached.
    raise Exception(f"URL fetch failure on {origin}: None -- "
                    "[Errno -3] Temporary failure in name resolution")

  # keras.applications calls get_file through the module that defines the
  # public keras.utils.get_file; found from it, not imported by its private
  # (keras.src) name.
  file_utils = sys.modules[keras.utils.get_file.__module__]
  monkeypatch.setattr(file_utils, "get_file", no_network)
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  with pytest.raises(backbones.BackboneWeightsError) as error:
    reconstructor_lib.build_reconstructor(K, name, size,
                                          backbone_weights="imagenet")
  # Our table of files agrees with what Keras asked for.
  assert requested == [backbones.imagenet_weights_file(name, size)]
  message = str(error.value)
  assert file_name in message
  assert os.path.join(str(tmp_path), "models") in message
  assert requested[0][1] in message  # the URL
  assert "--backbone_weights=none" in message
  assert "--backbone_weights=PATH" in message


def test_resnet18_has_no_imagenet_weights():
  with pytest.raises(ValueError, match="no ImageNet weights") as error:
    backbones.build_backbone("resnet18", SIZE, weights="imagenet")
  assert "resnet50" in str(error.value) and "PATH" in str(error.value)
  with pytest.raises(ValueError, match="mobilenet_v2"):
    reconstructor_lib.ReconstructorConfig(
        "resnet18", backbone_weights="imagenet").validate()


# --- serialization -----------------------------------------------------------


def test_keras_file_and_saved_model_round_trip(tmp_path):
  model = reconstructor_lib.build_reconstructor(K, "mobilenet_v2", SIZE)
  perturb(model)
  x = images(2)
  expected = model(x)

  model.save(tmp_path / "m.keras")
  loaded = keras.models.load_model(tmp_path / "m.keras")  # safe_mode
  np.testing.assert_allclose(loaded(x), expected, rtol=1e-5, atol=1e-6)
  assert loaded.output_names == ["coefficients"]

  module = tf.Module()
  module.model = model

  @tf.function(input_signature=[
      tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="image")])
  def serve(image):
    return {"coefficients": model(image, training=False)}

  tf.saved_model.save(module, str(tmp_path / "saved"),
                      signatures={"serving_default": serve})
  restored = tf.saved_model.load(str(tmp_path / "saved"))
  out = restored.signatures["serving_default"](image=tf.constant(x))
  np.testing.assert_allclose(out["coefficients"], expected, rtol=1e-5,
                             atol=1e-6)


def test_translation_outputs_are_in_units_of_100_mm(embedded_decoder, tmp_path):
  layout = embedded_decoder.layout
  scale = reconstructor_lib.coefficient_output_scale(layout)
  pose = layout.slices()["pose"]
  expected = np.ones([layout.size], np.float32)
  expected[pose.start + 3:pose.start + 6] = 100.0
  np.testing.assert_array_equal(scale, expected)
  model = reconstructor_lib.build_reconstructor(
      layout.size, "resnet18", SIZE, head_stddev=1e-2, output_scale=scale)
  head = keras.Model(model.input, model.get_layer("head").output)
  x = images(2)
  np.testing.assert_allclose(model(x).numpy(), head(x).numpy() * expected,
                             rtol=1e-6)
  assert model.output_names == ["coefficients"]
  # Weightless: a saved model file round-trips with the factors.
  path = str(tmp_path / "scaled.keras")
  model.save(path)
  np.testing.assert_allclose(keras.models.load_model(path)(x).numpy(),
                             model(x).numpy(), rtol=1e-6)
  with pytest.raises(ValueError, match="output_scale has 3 entries"):
    reconstructor_lib.build_reconstructor(layout.size, "resnet18", SIZE,
                                          output_scale=[1.0, 1.0, 1.0])
