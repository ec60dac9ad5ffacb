r"""Converts a face-model file to mgc_tf's native `.npz`.

  python -m mgc_tf.convert_face_model --input=BFM/BFM_model_front.mat \
      --output=bfm09_front.npz
  python -m mgc_tf.convert_face_model \
      --input=model/bfm09_trim_exp_uv_presplit.h5 --output=mgcnet_bfm09.npz
  python -m mgc_tf.convert_face_model --input=BFM/01_MorphableModel.mat \
      --exp_pca=BFM/Exp_Pca.bin --front_idx=BFM/BFM_front_idx.mat \
      --exp_idx=BFM/BFM_exp_idx.mat --info=BFM/facemodel_info.mat \
      --std_exp=BFM/std_exp.txt --output=bfm09_front.npz
  python -m mgc_tf.convert_face_model --input=ICT-FaceKit/FaceXModel \
      --output=ict.npz

For 01_MorphableModel.mat the companion flags default to the files of the
same name in the input's folder (Deep3DFaceReconstruction's BFM/ layout).
A folder is read as ICT-FaceKit Light's FaceXModel (docs/face_models.md).
Errors: one line "error: ..." on stderr, exit status 2.
"""

from mgc_tf import _quiet  # pylint: disable=g-bad-import-order
_quiet.quiet_start()  # before anything imports TensorFlow

import sys

from absl import app
from absl import flags

from mgc_tf import _flags
from mgc_tf.facemodel import loaders
from mgc_tf.facemodel.face_model import FaceModel
from mgc_tf.facemodel.face_model import FaceModelError

_INPUT = flags.DEFINE_string(
    "input", None, "Face-model file: BFM 2009 01_MorphableModel.mat, "
    "Deep3D BFM_model_front.mat, MGCNet .h5, a native .npz, or ICT-FaceKit "
    "Light's FaceXModel folder.")
_OUTPUT = flags.DEFINE_string("output", None, "Native .npz file to write.")
_EXP_PCA = flags.DEFINE_string(
    "exp_pca", None, "Guo et al.'s Exp_Pca.bin (BFM 2009 input only; "
    "default: next to --input).")
_FRONT_IDX = flags.DEFINE_string(
    "front_idx", None, "Deep3D's BFM_front_idx.mat (BFM 2009 input only).")
_EXP_IDX = flags.DEFINE_string(
    "exp_idx", None, "Deep3D's BFM_exp_idx.mat (BFM 2009 input only).")
_INFO = flags.DEFINE_string(
    "info", None, "Deep3D's facemodel_info.mat (BFM 2009 input only).")
_STD_EXP = flags.DEFINE_string(
    "std_exp", None, "Deep3D's std_exp.txt, the expression standard "
    "deviations (BFM 2009 input only).")
_ID_RANK = flags.DEFINE_integer(
    "id_rank", 80, "Identity components kept (ICT-FaceKit: all 100 unless "
    "given).")
_EXP_RANK = flags.DEFINE_integer("exp_rank", 64,
                                 "Expression components kept.")
_ALBEDO_RANK = flags.DEFINE_integer("albedo_rank", 80,
                                    "Albedo components kept.")
_REGION = flags.DEFINE_string(
    "region", None, "ICT-FaceKit only: vertices kept, 'face', 'narrow', "
    "'eyeballs' joined by '+' (default 'face+eyeballs').")
_EXPRESSIONS = flags.DEFINE_list(
    "expressions", None, "ICT-FaceKit only: blendshape names kept, in order "
    "(default: the 53 of vertex_indices.json).")
_ALBEDO_FROM = flags.DEFINE_string(
    "albedo_from", None, "ICT-FaceKit only: face-model file whose albedo is "
    "carried onto the ICT mesh (default: the embedded synthetic model).")


def summary(model: FaceModel, output: str) -> str:
  """One paragraph describing a converted model, for the console."""
  extent = model.mean_shape.max(0) - model.mean_shape.min(0)
  kind = " (blendshapes)" if model.is_blendshape else ""
  return (f"Wrote {output}\n"
          f"  source:      {model.name}\n"
          f"  vertices:    {model.num_vertices}\n"
          f"  triangles:   {model.num_triangles}\n"
          f"  ranks:       identity {model.id_rank}, expression "
          f"{model.exp_rank}{kind}, albedo {model.albedo_rank}\n"
          f"  mean extent: {extent[0]:.1f} x {extent[1]:.1f} x "
          f"{extent[2]:.1f} mm\n"
          f"  front / skin vertices: {int(model.front_mask.sum())} / "
          f"{int((model.skin_mask > 0.5).sum())}\n"
          f"  camera:      focal {model.focal_length:g} px on a "
          f"{model.image_size} crop, default pose "
          f"{[round(float(x), 4) for x in model.default_pose]}")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not _INPUT.value or not _OUTPUT.value:
    raise app.UsageError("--input and --output are required.")
  try:
    albedo_from = (loaders.load_face_model(_ALBEDO_FROM.value)
                   if _ALBEDO_FROM.value else None)
    model = loaders.load_face_model_file(
        _INPUT.value, exp_pca=_EXP_PCA.value, front_idx=_FRONT_IDX.value,
        exp_idx=_EXP_IDX.value, info=_INFO.value, std_exp=_STD_EXP.value,
        id_rank=_ID_RANK.value if _ID_RANK.present else None,
        exp_rank=_EXP_RANK.value, albedo_rank=_ALBEDO_RANK.value,
        ict_region=_REGION.value, exp_names=_EXPRESSIONS.value,
        albedo_from=albedo_from)
  except FaceModelError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  model.save(_OUTPUT.value)
  print(summary(model, _OUTPUT.value))
  return 0


def run() -> None:
  """Console-script entry point (`mgc-convert-face-model`)."""
  _flags.run(main)


if __name__ == "__main__":
  run()
