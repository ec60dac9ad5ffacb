"""Face models: the `FaceModel` container, its native format and loaders,
the coefficient layout (`coefficients`), the decoder from coefficients to a
mesh, colours and landmarks (`decoder`), its SH lighting and vertex normals
(`shading`), the expression kinds (`expressions`: PCA or blendshapes),
ICT-FaceKit Light (`ict`, with its OBJ reader `obj` and the albedo carried
over by `transfer`), and the embedded synthetic model (`synthetic`).

`load_face_model(path)` is the entry point: a native `.npz`, Deep3D's
`BFM_model_front.mat`, MGCNet's `.h5`, ICT-FaceKit's FaceXModel folder, or
None for the embedded synthetic model. `python -m mgc_tf.convert_face_model`
converts the real files.
"""

from mgc_tf.facemodel.face_model import FaceModel
from mgc_tf.facemodel.face_model import FaceModelError
from mgc_tf.facemodel.ict import load_ict_facekit
from mgc_tf.facemodel.loaders import convert_bfm2009
from mgc_tf.facemodel.loaders import load_deep3d_bfm_front
from mgc_tf.facemodel.loaders import load_face_model
from mgc_tf.facemodel.loaders import load_mgcnet_h5
from mgc_tf.facemodel.loaders import orient_triangles_to_front
from mgc_tf.facemodel.loaders import read_exp_pca_bin

__all__ = [
    "FaceModel",
    "FaceModelError",
    "convert_bfm2009",
    "load_deep3d_bfm_front",
    "load_face_model",
    "load_ict_facekit",
    "load_mgcnet_h5",
    "orient_triangles_to_front",
    "read_exp_pca_bin",
]
