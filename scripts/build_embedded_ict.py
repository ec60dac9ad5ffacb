"""Regenerates the packaged ICT-FaceKit Light model (`embedded-ict-light-v1`).

  git clone https://github.com/ICT-VGL/ICT-FaceKit
  python scripts/build_embedded_ict.py --input=ICT-FaceKit/FaceXModel

Reads the FaceXModel folder as `python -m mgc_tf.convert_face_model` does
(face area + eyeballs, 100 identity modes, 53 blendshapes), carries the
embedded synthetic model's albedo by the nearest-surface map, and writes
`mgc_tf/facemodel/assets/ict_light_v1.npz` (see
`mgc_tf/facemodel/embedded_ict.py` for what it holds) plus the MIT notice
beside it, copied from the folder's LICENSE. The same folder gives the same
bytes. Prints the file's size and what float16 storage costs in mm.
"""

import hashlib
import os
import shutil
import sys

from absl import app
from absl import flags
import numpy as np

_INPUT = flags.DEFINE_string("input", None,
                             "ICT-FaceKit's FaceXModel folder (required).")
_OUTPUT = flags.DEFINE_string("output", None,
                              "The .npz to write (default: the package's).")


def main(argv):
  del argv
  # pylint: disable=g-import-not-at-top
  from mgc_tf.facemodel import embedded_ict
  from mgc_tf.facemodel import ict
  from mgc_tf.facemodel import synthetic
  from mgc_tf.facemodel.face_model import FaceModelError
  if not _INPUT.value:
    print(f"error: --input is required: ICT-FaceKit's FaceXModel folder "
          f"({ict.ICT_URL}).", file=sys.stderr)
    return 2
  output = _OUTPUT.value or embedded_ict.ASSET_PATH
  albedo_from = synthetic.embedded_face_model()
  try:
    model = ict.load_ict_facekit(_INPUT.value, albedo_from=albedo_from)
  except FaceModelError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  surface_map = ict.albedo_surface_map(albedo_from, model.mean_shape,
                                       model.landmark_indices)
  embedded_ict.write_embedded_ict(model, surface_map, albedo_from, output)
  licence = os.path.join(os.path.dirname(os.path.abspath(_INPUT.value)),
                         "LICENSE")
  notice = os.path.join(os.path.dirname(os.path.abspath(output)),
                        os.path.basename(embedded_ict.NOTICE_PATH))
  if os.path.exists(licence):
    shutil.copyfile(licence, notice)
  elif not os.path.exists(notice):
    print(f"error: {licence} not found: the MIT notice must be kept beside "
          f"{output}; give the FaceXModel folder of a full clone.",
          file=sys.stderr)
    return 2
  read = embedded_ict.read_embedded_ict(output, albedo_from=albedo_from)
  with open(output, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:16]
  print(f"Wrote {output}: {os.path.getsize(output) / 1e6:.2f} MB, sha256 "
        f"{digest}, notice {notice}")
  print(f"  {read.num_vertices} vertices, {read.num_triangles} triangles, "
        f"identity rank {read.id_rank}, {read.exp_rank} "
        f"{read.expression_kind}s, albedo rank {read.albedo_rank}")
  for name in ("id_basis", "exp_basis", "mean_albedo"):
    error = np.abs(getattr(read, name) - getattr(model, name)).max()
    print(f"  max |{name} stored - converted| = {error:.5f}")
  print(f"  albedo: median distance to the synthetic surface "
        f"{np.median(surface_map.distances):.1f} mm, landmark RMS "
        f"{surface_map.landmark_rms:.1f} mm")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
