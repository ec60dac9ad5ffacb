"""Camera and multi-view geometry in pure TensorFlow (differentiable, float32).

Modules:
  camera:   pinhole intrinsics, projection, unprojection, rigid transforms.
  rotation: Euler angles (rz, ry, rx) <-> R = Rx Ry Rz, pose vectors.
  epipolar: relative pose, essential / fundamental matrices, symmetric
            epipolar distance.
  landmark_pose: PGN's closed-form pose from 3D landmarks (eq. 4) and its
            conversion to our pinhole camera.

Conventions (DESIGN.md section 4): OpenCV camera axes (x right, y down,
z forward), millimetres, pixels as (x, y), radians; X_c = R X + t.

Dtype: every function computes in the dtype of its `tf.Tensor` inputs
(float32 or float64; tensors of different dtypes raise ValueError). Python
numbers, lists and NumPy arrays are cast to that dtype, or to float32 when no
tensor is given.
"""

from mgc_tf.geometry.camera import DEFAULT_IMAGE_SIZE
from mgc_tf.geometry.camera import intrinsics
from mgc_tf.geometry.camera import invert_intrinsics
from mgc_tf.geometry.camera import project
from mgc_tf.geometry.camera import transform
from mgc_tf.geometry.camera import unproject
from mgc_tf.geometry.epipolar import DEFAULT_LINE_EPSILON
from mgc_tf.geometry.epipolar import essential_matrix
from mgc_tf.geometry.epipolar import fundamental_matrix
from mgc_tf.geometry.epipolar import relative_pose
from mgc_tf.geometry.epipolar import skew
from mgc_tf.geometry.epipolar import symmetric_epipolar_distance
from mgc_tf.geometry.rotation import euler_to_rotation
from mgc_tf.geometry.rotation import pose_to_rotation_translation
from mgc_tf.geometry.rotation import rotation_to_euler

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_LINE_EPSILON",
    "essential_matrix",
    "euler_to_rotation",
    "fundamental_matrix",
    "intrinsics",
    "invert_intrinsics",
    "pose_to_rotation_translation",
    "project",
    "relative_pose",
    "rotation_to_euler",
    "skew",
    "symmetric_epipolar_distance",
    "transform",
    "unproject",
]
