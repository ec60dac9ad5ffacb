"""2D losses (render, landmark, regularization, identity) against NumPy.

References are written here from the formulas in DESIGN.md section 5, with
plain NumPy and hard-coded slice positions, never by calling the code under
test a second time.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mgc_tf import losses
from mgc_tf.facemodel import coefficients as coefficients_lib
from mgc_tf.losses import identity as identity_lib

# --- NumPy references -------------------------------------------------------


def np_render_loss(images, rendered, mask, skin):
  """Per-sample sum_i w ||I - I_re|| / sum_i w, w = mask * skin."""
  error = np.sqrt(np.sum((images - rendered)**2, axis=-1))
  weights = mask * skin
  out = []
  for b in range(images.shape[0]):
    total = weights[b].sum()
    out.append(0.0 if total == 0 else (weights[b] * error[b]).sum() / total)
  return np.array(out)


def np_landmark_weights(value):
  weights = np.ones(68)
  for k in list(range(27, 36)) + list(range(60, 68)):
    weights[k] = value
  return weights


def np_landmark_loss(pred, gt, weights):
  squared = ((pred - gt)**2).sum(-1)  # [B, L]
  return (weights * squared).sum(-1) / pred.shape[1]


def np_regularization(coefficients, w_id=1.0, w_exp=0.8, w_alb=3e-3):
  """BFM layout [identity 80 | albedo 80 | expression 64 | pose 6 | SH 27]."""
  alpha = coefficients[:, 0:80]
  delta = coefficients[:, 80:160]
  beta = coefficients[:, 160:224]
  return (w_id * (alpha**2).sum(-1) + w_exp * (beta**2).sum(-1) +
          w_alb * (delta**2).sum(-1))


def np_cosine_distance(a, b):
  cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) *
                           np.linalg.norm(b, axis=-1))
  return 1.0 - cos


# --- render loss ------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
def test_render_loss_matches_numpy(batch):
  rng = np.random.default_rng(batch)
  images = rng.uniform(size=[batch, 12, 10, 3]).astype(np.float32)
  rendered = rng.uniform(size=[batch, 12, 10, 3]).astype(np.float32)
  mask = (rng.uniform(size=[batch, 12, 10, 1]) > 0.4).astype(np.float32)
  skin = rng.uniform(size=[batch, 12, 10, 1]).astype(np.float32)
  expected = np_render_loss(images, rendered, mask[..., 0], skin[..., 0])
  got = losses.render_loss(images, rendered, mask, skin)
  assert got.shape == (batch,)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
  # [B, H, W] weight maps and tf.function give the same.
  got_fn = tf.function(losses.render_loss)(
      tf.constant(images), tf.constant(rendered), tf.constant(mask[..., 0]),
      tf.constant(skin[..., 0]))
  np.testing.assert_allclose(got_fn.numpy(), expected, rtol=1e-5)


def test_render_loss_without_skin_is_mean_over_mask():
  rng = np.random.default_rng(0)
  images = rng.uniform(size=[2, 8, 8, 3]).astype(np.float32)
  rendered = rng.uniform(size=[2, 8, 8, 3]).astype(np.float32)
  mask = np.zeros([2, 8, 8, 1], np.float32)
  mask[:, 2:6, 1:5] = 1.0
  error = np.sqrt(((images - rendered)**2).sum(-1))
  expected = error[:, 2:6, 1:5].mean(axis=(1, 2))
  got = losses.render_loss(images, rendered, mask)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
  got_bool = losses.render_loss(images, rendered, tf.constant(mask > 0.5))
  np.testing.assert_allclose(got_bool.numpy(), expected, rtol=1e-5)


def test_render_loss_ignores_pixels_outside_the_mask():
  rng = np.random.default_rng(1)
  images = rng.uniform(size=[1, 8, 8, 3]).astype(np.float32)
  mask = np.zeros([1, 8, 8, 1], np.float32)
  mask[:, :4] = 1.0
  rendered = images.copy()
  rendered[:, 4:] = 1.0 - rendered[:, 4:]  # differs only outside the mask
  assert losses.render_loss(images, rendered, mask).numpy()[0] == 0.0


def test_render_loss_identical_images_is_zero_with_finite_gradient():
  rng = np.random.default_rng(2)
  images = tf.constant(rng.uniform(size=[2, 8, 8, 3]), tf.float32)
  rendered = tf.Variable(images)
  mask = tf.ones([2, 8, 8, 1])
  with tf.GradientTape() as tape:
    loss = losses.render_loss(images, rendered, mask)
  grad = tape.gradient(loss, rendered)
  np.testing.assert_array_equal(loss.numpy(), [0.0, 0.0])
  assert np.all(np.isfinite(grad.numpy()))


def test_render_loss_empty_mask_is_zero_with_finite_gradient():
  rng = np.random.default_rng(3)
  images = tf.constant(rng.uniform(size=[2, 8, 8, 3]), tf.float32)
  rendered = tf.Variable(rng.uniform(size=[2, 8, 8, 3]), dtype=tf.float32)
  mask = np.ones([2, 8, 8, 1], np.float32)
  mask[1] = 0.0  # sample 1 has an empty render
  skin = tf.ones([2, 8, 8, 1])

  @tf.function
  def loss_and_grad():
    with tf.GradientTape() as tape:
      loss = losses.render_loss(images, rendered, mask, skin)
    return loss, tape.gradient(loss, rendered)

  loss, grad = loss_and_grad()
  assert loss.numpy()[0] > 0.1
  assert loss.numpy()[1] == 0.0
  grad = grad.numpy()
  assert np.all(np.isfinite(grad))
  assert np.abs(grad[0]).sum() > 0.0
  np.testing.assert_array_equal(grad[1], 0.0)


def test_render_loss_rejects_bad_shapes():
  with pytest.raises(ValueError, match="images"):
    losses.render_loss(tf.zeros([2, 8, 8, 4]), tf.zeros([2, 8, 8, 4]),
                       tf.ones([2, 8, 8, 1]))
  with pytest.raises(ValueError, match="mask"):
    losses.render_loss(tf.zeros([2, 8, 8, 3]), tf.zeros([2, 8, 8, 3]),
                       tf.ones([2, 8, 8, 3]))


# --- landmark loss ----------------------------------------------------------


def test_landmark_weights_paper_default_and_parameter():
  np.testing.assert_array_equal(losses.landmark_weights(),
                                np_landmark_weights(10.0))
  np.testing.assert_array_equal(losses.landmark_weights(5.0),
                                np_landmark_weights(5.0))
  assert losses.landmark_weights().sum() == 51 + 17 * 10
  with pytest.raises(ValueError, match="num_landmarks"):
    losses.landmark_weights(num_landmarks=5)


@pytest.mark.parametrize("batch", [1, 4])
def test_landmark_loss_matches_numpy(batch):
  rng = np.random.default_rng(10 + batch)
  pred = rng.uniform(0, 224, [batch, 68, 2]).astype(np.float32)
  gt = rng.uniform(0, 224, [batch, 68, 2]).astype(np.float32)
  got = losses.landmark_loss(pred, gt)
  assert got.shape == (batch,)
  np.testing.assert_allclose(
      got.numpy(), np_landmark_loss(pred, gt, np_landmark_weights(10.0)),
      rtol=1e-5)
  got5 = tf.function(losses.landmark_loss)(pred, gt, nose_mouth_weight=5.0)
  np.testing.assert_allclose(
      got5.numpy(), np_landmark_loss(pred, gt, np_landmark_weights(5.0)),
      rtol=1e-5)
  # Per-sample weights, e.g. confidences times visibility.
  weights = rng.uniform(0, 3, [batch, 68]).astype(np.float32)
  np.testing.assert_allclose(
      losses.landmark_loss(pred, gt, weights=weights).numpy(),
      np_landmark_loss(pred, gt, weights), rtol=1e-5)


def test_landmark_loss_known_shift():
  rng = np.random.default_rng(20)
  gt = rng.uniform(0, 224, [2, 68, 2]).astype(np.float32)
  pred = gt + np.array([3.0, 4.0], np.float32)  # |shift|^2 = 25 px^2
  # (17 landmarks at 10 + 51 at 1) * 25 / 68 = 221 * 25 / 68 = 81.25.
  np.testing.assert_allclose(
      losses.landmark_loss(pred, gt).numpy(), [81.25, 81.25], rtol=1e-5)
  # (17 * 5 + 51) * 25 / 68 = 50.0 with the code release's weight.
  np.testing.assert_allclose(
      losses.landmark_loss(pred, gt, nose_mouth_weight=5.0).numpy(),
      [50.0, 50.0], rtol=1e-5)
  np.testing.assert_allclose(
      losses.landmark_loss(gt, gt).numpy(), [0.0, 0.0], atol=0)


# --- regularization ---------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
def test_regularization_matches_numpy(batch):
  rng = np.random.default_rng(30 + batch)
  layout = coefficients_lib.CoefficientLayout()
  coefficients = rng.normal(size=[batch, 257]).astype(np.float32)
  got = losses.regularization_loss(coefficients, layout)
  assert got.shape == (batch,)
  np.testing.assert_allclose(got.numpy(), np_regularization(coefficients),
                             rtol=1e-5)
  got = tf.function(losses.regularization_loss)(
      tf.constant(coefficients), layout, identity_weight=2.0,
      expression_weight=0.5, albedo_weight=0.1)
  np.testing.assert_allclose(
      got.numpy(), np_regularization(coefficients, 2.0, 0.5, 0.1), rtol=1e-5)


def test_regularization_known_values():
  layout = coefficients_lib.CoefficientLayout()
  np.testing.assert_array_equal(
      losses.regularization_loss(tf.zeros([2, 257]), layout).numpy(), 0.0)
  # Ones in alpha (80), delta (80), beta (64); pose and lighting not counted.
  coefficients = np.ones([1, 257], np.float32)
  coefficients[:, 224:] = 5.0
  expected = 1.0 * 80 + 0.8 * 64 + 3e-3 * 80  # 131.44
  np.testing.assert_allclose(
      losses.regularization_loss(coefficients, layout).numpy(), [expected],
      rtol=1e-6)
  with pytest.raises(ValueError, match="257"):
    losses.regularization_loss(tf.zeros([1, 250]), layout)


def test_regularization_uses_layout_ranks():
  layout = coefficients_lib.CoefficientLayout(id_rank=5, albedo_rank=3,
                                              exp_rank=4)
  c = np.arange(layout.size, dtype=np.float32)[None] / 10.0
  expected = ((c[0, :5]**2).sum() + 0.8 * (c[0, 8:12]**2).sum() +
              3e-3 * (c[0, 5:8]**2).sum())
  np.testing.assert_allclose(
      losses.regularization_loss(c, layout).numpy(), [expected], rtol=1e-6)


# --- identity loss ----------------------------------------------------------

EMBED_SIZE = 16


def make_embedding_model(input_shape=(EMBED_SIZE, EMBED_SIZE, 3), seed=0):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input(input_shape)
  x = keras.layers.Conv2D(6, 3, activation="tanh")(inputs)
  x = keras.layers.Conv2D(6, 3, strides=2, activation="tanh")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(8)(x)
  return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def saved_networks(tmp_path_factory):
  """The same small network as .keras, tf.saved_model.save and export."""
  root = tmp_path_factory.mktemp("face_embedding")
  model = make_embedding_model()
  paths = {
      "keras": str(root / "net.keras"),
      "tf_saved_model": str(root / "tf_saved_model"),
      "keras_export": str(root / "keras_export"),
  }
  model.save(paths["keras"])
  tf.saved_model.save(model, paths["tf_saved_model"])
  model.export(paths["keras_export"], verbose=False)
  return model, paths


def random_images(rng, batch, size=24):
  return rng.uniform(size=[batch, size, size, 3]).astype(np.float32)


def np_reference_loss(model, images, rendered, scale=1.0, offset=0.0,
                      mean=None, std=None):
  """Embeds with the original in-memory model; NumPy cosine distance."""
  def prep(x):
    x = tf.image.resize(x, (EMBED_SIZE, EMBED_SIZE)).numpy() * scale + offset
    if mean is not None:
      x = (x - np.asarray(mean)) / np.asarray(std)
    return x.astype(np.float32)
  a = model(prep(images), training=False).numpy().astype(np.float64)
  b = model(prep(rendered), training=False).numpy().astype(np.float64)
  return np_cosine_distance(a, b)


@pytest.mark.parametrize("kind", ["keras", "tf_saved_model", "keras_export"])
@pytest.mark.parametrize("batch", [1, 3])
def test_identity_loss_matches_numpy_and_known_cases(saved_networks, kind,
                                                     batch):
  model, paths = saved_networks
  loss_fn = losses.IdentityLoss.from_path(paths[kind])
  assert loss_fn.enabled
  assert loss_fn.embedding.input_size == (EMBED_SIZE, EMBED_SIZE)
  rng = np.random.default_rng(40 + batch)
  images = random_images(rng, batch)
  rendered = random_images(rng, batch)
  got = loss_fn(images, rendered)
  assert got.shape == (batch,)
  np.testing.assert_allclose(
      got.numpy(), np_reference_loss(model, images, rendered), atol=1e-5)
  assert np.all(got.numpy() > 1e-4)
  np.testing.assert_allclose(loss_fn(images, images).numpy(), 0.0, atol=1e-6)


def test_identity_loss_normalisation_is_applied(saved_networks):
  model, paths = saved_networks
  kwargs = dict(scale=255.0, offset=-10.0, mean=[120.0, 110.0, 100.0],
                std=[60.0, 50.0, 40.0])
  loss_fn = losses.IdentityLoss.from_path(paths["keras_export"], **kwargs)
  rng = np.random.default_rng(50)
  images, rendered = random_images(rng, 2), random_images(rng, 2)
  expected = np_reference_loss(model, images, rendered, **kwargs)
  np.testing.assert_allclose(loss_fn(images, rendered).numpy(), expected,
                             atol=1e-5)
  plain = np_reference_loss(model, images, rendered)
  assert np.abs(expected - plain).max() > 1e-4  # the check can fail


@pytest.mark.parametrize("kind", ["keras", "keras_export"])
def test_identity_gradients_reach_render_not_network(saved_networks, kind):
  _, paths = saved_networks
  loss_fn = losses.IdentityLoss.from_path(paths[kind])
  network_variables = loss_fn.embedding.variables
  assert network_variables
  assert not loss_fn.embedding.trainable_variables
  rng = np.random.default_rng(60)
  images = tf.constant(random_images(rng, 2))
  rendered = tf.Variable(random_images(rng, 2))

  def loss_and_grads():
    with tf.GradientTape() as tape:  # watches every accessed variable
      loss = tf.reduce_sum(loss_fn(images, rendered))
    return tape.gradient(loss, [rendered] + network_variables)

  for fn in (loss_and_grads, tf.function(loss_and_grads)):
    grads = fn()
    assert grads[0] is not None
    assert np.all(np.isfinite(grads[0].numpy()))
    assert np.abs(grads[0].numpy()).sum() > 0.0
    assert all(g is None for g in grads[1:])


def test_identity_gradient_matches_finite_differences(saved_networks):
  _, paths = saved_networks
  loss_fn = losses.IdentityLoss.from_path(paths["keras"])
  rng = np.random.default_rng(70)
  images = tf.constant(random_images(rng, 1, size=EMBED_SIZE))
  rendered = random_images(rng, 1, size=EMBED_SIZE)
  theoretical, numerical = tf.test.compute_gradient(
      lambda r: loss_fn(images, r), [tf.constant(rendered)], delta=1e-2)
  np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3)


def test_identity_disabled_returns_zeros_and_logs_once(monkeypatch):
  messages = []
  monkeypatch.setattr(identity_lib.logging, "warning",
                      lambda msg, *args: messages.append(msg % args))
  loss_fn = losses.IdentityLoss.from_path(None)
  assert not loss_fn.enabled
  images = tf.ones([3, 8, 8, 3])
  np.testing.assert_array_equal(loss_fn(images, images).numpy(), [0, 0, 0])
  out = tf.function(loss_fn)(images, tf.zeros([3, 8, 8, 3]))
  np.testing.assert_array_equal(out.numpy(), [0, 0, 0])
  assert len(messages) == 1
  assert "disabled" in messages[0] and "SavedModel" in messages[0]


def test_identity_missing_or_broken_path_errors(tmp_path):
  missing = str(tmp_path / "facenet.keras")
  with pytest.raises(FileNotFoundError, match="facenet.keras"):
    losses.IdentityLoss.from_path(missing)
  broken = tmp_path / "broken.keras"
  broken.write_bytes(b"not a keras archive")
  with pytest.raises(ValueError, match="broken.keras.*Keras model file"):
    losses.FaceEmbedding.from_path(str(broken))
  empty_dir = tmp_path / "not_a_saved_model"
  empty_dir.mkdir()
  with pytest.raises(FileNotFoundError, match="saved_model.pb"):
    losses.FaceEmbedding.from_path(str(empty_dir))
  weird = tmp_path / "net.onnx"
  weird.write_bytes(b"x")
  with pytest.raises(ValueError, match="net.onnx"):
    losses.FaceEmbedding.from_path(str(weird))
  broken_dir = tmp_path / "broken_saved_model"
  broken_dir.mkdir()
  (broken_dir / "saved_model.pb").write_bytes(b"garbage")
  with pytest.raises(ValueError, match="broken_saved_model"):
    losses.FaceEmbedding.from_path(str(broken_dir))


def test_identity_dynamic_input_size_must_be_configured(tmp_path):
  model = make_embedding_model(input_shape=(None, None, 3))
  path = str(tmp_path / "dynamic.keras")
  model.save(path)
  with pytest.raises(ValueError, match="input_size"):
    losses.FaceEmbedding.from_path(path)
  embedding = losses.FaceEmbedding.from_path(path, input_size=(20, 18))
  assert embedding.input_size == (20, 18)
  assert embedding.preprocess(tf.zeros([1, 24, 24, 3])).shape == (1, 20, 18, 3)
  # A configured size that contradicts the model's is refused.
  fixed = str(tmp_path / "fixed.keras")
  make_embedding_model().save(fixed)
  with pytest.raises(ValueError, match="input_size"):
    losses.FaceEmbedding.from_path(fixed, input_size=(20, 20))


def test_cosine_distance_matches_numpy():
  rng = np.random.default_rng(80)
  a = rng.normal(size=[4, 8]).astype(np.float32)
  b = rng.normal(size=[4, 8]).astype(np.float32)
  np.testing.assert_allclose(losses.cosine_distance(a, b).numpy(),
                             np_cosine_distance(a, b), atol=1e-6)
  np.testing.assert_allclose(losses.cosine_distance(a, -a).numpy(), 2.0,
                             atol=1e-6)

