"""Data: TFDS feature schemas (`features`), multi-view groups of a dataset
build (`groups`), augmentation (`augment`), procedural occluders in front of
faces with their masks (`occluders`, NumPy/OpenCV), preparation of the
synthetic set (`prepare`) and the N-view tf.data pipelines (`pipeline`).

File formats live in `mgc_tf.io`, 2D face work (detection, landmarks,
alignment, skin) in `mgc_tf.faces2d`."""
