"""The coefficient layout is one named table used everywhere."""

import numpy as np
import pytest
import tensorflow as tf

from mgc_tf.facemodel import coefficients


def test_bfm_layout_is_257_in_design_order():
  layout = coefficients.CoefficientLayout()
  assert layout.size == 257
  s = layout.slices()
  assert (s["identity"], s["albedo"], s["expression"], s["pose"],
          s["lighting"]) == (slice(0, 80), slice(80, 160), slice(160, 224),
                             slice(224, 230), slice(230, 257))


def test_layout_follows_the_face_model_ranks(tiny_face_model):
  layout = coefficients.CoefficientLayout.from_face_model(tiny_face_model)
  assert (layout.id_rank, layout.exp_rank, layout.albedo_rank) == (5, 4, 3)
  assert layout.size == 5 + 3 + 4 + 6 + 27


def test_split_join_round_trip_and_shape_error():
  layout = coefficients.CoefficientLayout()
  x = tf.constant(np.random.default_rng(0).normal(size=[2, 3, 257]),
                  tf.float32)
  groups = layout.split(x)
  assert groups["pose"].shape == (2, 3, 6)
  np.testing.assert_array_equal(layout.join(groups), x)
  partial = layout.join({"pose": tf.ones([4, 6])})
  assert partial.shape == (4, 257)
  assert float(tf.reduce_sum(partial)) == 24.0
  with pytest.raises(ValueError, match="257"):
    layout.split(tf.zeros([1, 256]))
