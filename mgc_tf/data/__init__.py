"""Data: TFDS feature schemas, preprocessing (detect, landmarks, align, skin),
bad-input accounting for dataset builds, and the N-view tf.data pipelines."""
