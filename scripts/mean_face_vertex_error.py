"""The vertex error of predicting the mean face for every view: the floor a
trained model has to beat on a synthetic set (its test split's ground-truth
identity and expression, aligned and measured as `mgc_tf.evaluate` does, on
the face model's front region).

  python scripts/mean_face_vertex_error.py --dataset=synthetic_multiview/v2_small
"""

import sys

from absl import app
from absl import flags
import numpy as np

_DATASET = flags.DEFINE_string("dataset", "synthetic_multiview/v2_small",
                               "A prepared synthetic_multiview config.")
_SPLIT = flags.DEFINE_string("split", "test", "Split.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir.")


def main(argv):
  del argv
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tensorflow_datasets as tfds
  from mgc_tf.data import pipeline
  from mgc_tf.evaluation import metrics
  from mgc_tf.facemodel import decoder as decoder_lib
  from mgc_tf.facemodel import loaders
  try:
    builder = pipeline.load_builder(pipeline.SourceSpec(_DATASET.value),
                                    _DATA_DIR.value)
  except pipeline.DatasetError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  name = (builder.info.metadata or {}).get("face_model")
  if name not in loaders.embedded_model_names():
    print(f"error: {_DATASET.value} records no packaged face model (not a "
          "synthetic set?)", file=sys.stderr)
    return 2
  decoder = decoder_lib.FaceDecoder(loaders.load_face_model(name))
  model = decoder.face_model
  errors = []
  for example in tfds.as_numpy(builder.as_dataset(split=_SPLIT.value)):
    groups = decoder.layout.split(tf.constant(example["coefficients"]))
    for truth in decoder.shape(groups["identity"],
                               groups["expression"]).numpy():
      errors.append(metrics.aligned_vertex_error(model.mean_shape, truth,
                                                 model.front_mask))
  print(f"{_DATASET.value} {_SPLIT.value} ({name}): mean face vertex error "
        f"{np.mean(errors):.2f} mm over {len(errors)} views "
        f"({int(np.sum(model.front_mask))} front vertices)")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
