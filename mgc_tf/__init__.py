"""mgc-tf: self-supervised monocular 3D face reconstruction in TF2/Keras 3.

The front door for Python users:

    import mgc_tf
    model = mgc_tf.Reconstructor.from_run("runs/quickstart")
    result = model.reconstruct(crops)        # aligned face crops [N, H, H, 3]
    face_model = mgc_tf.load_face_model()    # the default, ICT-FaceKit Light

Both names are imported on first use, so `import mgc_tf` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["Reconstructor", "load_face_model", "__version__"]


def __getattr__(name):
  # Lazy: importing TensorFlow for `mgc_tf.__version__` would cost seconds.
  if name == "Reconstructor":
    from mgc_tf.inference.reconstructor import Reconstructor  # pylint: disable=g-import-not-at-top
    return Reconstructor
  if name == "load_face_model":
    from mgc_tf.facemodel.loaders import load_face_model  # pylint: disable=g-import-not-at-top
    return load_face_model
  raise AttributeError(f"module 'mgc_tf' has no attribute {name!r}")
