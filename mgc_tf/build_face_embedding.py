"""Converts dlib's face-recognition network to Keras ahead of time; prints the path.

  python -m mgc_tf.build_face_embedding [--force]

The network (dlib_face_recognition_resnet_model_v1.dat, CC0, from the
face-recognition-models package of the `preprocess` extra) is otherwise
converted on first use; see mgc_tf/models/dlib_resnet.py and
docs/face_embedding.md. The weights are cached under
$MGC_TF_FACE_EMBEDDING_CACHE (default ~/.cache/mgc_tf/face_embedding).
"""

from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import sys

from absl import app
from absl import flags

from mgc_tf import _flags
from mgc_tf.models import dlib_resnet

_FORCE = flags.DEFINE_bool("force", False,
                           "Convert again even if cached weights exist.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    path = dlib_resnet.convert(force=_FORCE.value)
  except (dlib_resnet.FaceEmbeddingDependencyError,
          dlib_resnet.FaceEmbeddingConversionError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(path)
  return 0


def run():
  _flags.run(main)


if __name__ == "__main__":
  run()
