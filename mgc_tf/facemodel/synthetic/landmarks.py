"""The 68 iBUG landmarks of the synthetic face and its default pose.

Landmarks are the vertices nearest analytic feature positions; the jaw
contour is the frontal outline, sampled evenly by arc length. The default
pose puts the mean face on the 224 alignment template.
"""

import numpy as np

from mgc_tf.facemodel.synthetic.features import (brow_centre_line,
                                                 eyelid_curves, lip_thickness,
                                                 mouth_line)
from mgc_tf.facemodel.synthetic.params import (ALIGNMENT_TEMPLATE_224,
                                               BROW_HALF_LENGTH, BROW_X,
                                               CANTHAL_TILT, EYE_HALF_WIDTH,
                                               EYE_X, FOCAL_LENGTH, IMAGE_SIZE,
                                               MOUTH_HALF_WIDTH, NASION_Y,
                                               NOSE_TIP_Y, SUBNASALE_Y)

_LID_S = 0.42   # |s| of the two upper- and lower-lid landmarks of each eye


def _eye_targets(side):
  """[6, 2] (u, v) of one eye's landmarks; `side` -1: image left, +1: right.

  iBUG order for the image-left eye (36-41): outer corner, two upper-lid
  points going inwards, inner corner, two lower-lid points going outwards.
  The image-right eye (42-47) starts at its inner corner, so it is the
  mirror image of the left one in the order (39, 38, 37, 36, 41, 40).
  """
  s_upper = np.array([_LID_S, -_LID_S])                # outer -> inner
  u_upper = side * (EYE_X + EYE_HALF_WIDTH * s_upper)
  u_lower = side * (EYE_X - EYE_HALF_WIDTH * s_upper)  # inner -> outer
  upper, _ = eyelid_curves(u_upper)
  _, lower = eyelid_curves(u_lower)
  outer = side * (EYE_X + EYE_HALF_WIDTH)
  inner = side * (EYE_X - EYE_HALF_WIDTH)
  left_order = np.array([
      [outer, CANTHAL_TILT], [u_upper[0], upper[0]], [u_upper[1], upper[1]],
      [inner, -CANTHAL_TILT], [u_lower[0], lower[0]], [u_lower[1], lower[1]]])
  return left_order if side < 0 else left_order[[3, 2, 1, 0, 5, 4]]


def _brow_targets(side):
  """[5, 2] (u, v) along the upper half of one brow.

  Outer to inner for the image-left brow (17-21), inner to outer for the
  image-right one (22-26).
  """
  t = np.array([0.97, 0.74, 0.5, 0.27, 0.04])
  u = BROW_X - BROW_HALF_LENGTH + 2.0 * BROW_HALF_LENGTH * t
  points = np.stack([side * u, brow_centre_line(t) + 1.2], -1)
  return points if side < 0 else points[::-1]


def _nose_and_mouth_targets():
  """Dict landmark id -> (u, v) for landmarks 27-29, 31-35 and 48-67."""
  bridge = np.linspace(NASION_Y - 5.0, NOSE_TIP_Y, 4)
  b = SUBNASALE_Y
  targets = {27: (0.0, bridge[0]), 28: (0.0, bridge[1]), 29: (0.0, bridge[2]),
             31: (-11.5, b + 2.0), 32: (-5.5, b + 0.4), 33: (0.0, b - 0.4),
             34: (5.5, b + 0.4), 35: (11.5, b + 2.0)}
  w = MOUTH_HALF_WIDTH
  # Outer lip contour: mouth corners, upper border (48-54), lower (55-59).
  for k, u in enumerate([-w, -0.6 * w, -6.0, 0.0, 6.0, 0.6 * w, w]):
    border = 0.0 if k in (0, 6) else lip_thickness(u)[0]
    targets[48 + k] = (u, mouth_line(u) + border)
  for k, u in enumerate([0.6 * w, 6.0, 0.0, -6.0, -0.6 * w]):
    targets[55 + k] = (u, mouth_line(u) - lip_thickness(u)[1])
  # Inner lip contour: inner corners (60, 64), upper (61-63), lower (65-67),
  # just above and below the mouth line.
  for k, u in {60: -0.82 * w, 64: 0.82 * w}.items():
    targets[k] = (u, mouth_line(u))
  for k, u in enumerate([-8.0, 0.0, 8.0]):
    targets[61 + k] = (u, mouth_line(u) + 0.8)
  for k, u in enumerate([8.0, 0.0, -8.0]):
    targets[65 + k] = (u, mouth_line(u) - 0.8)
  return targets


def _nearest_vertex(u, v, target, allowed=None):
  """Id of the vertex whose (u, v) is nearest to `target`, among `allowed`."""
  d2 = (u - target[0])**2 + (v - target[1])**2
  if allowed is not None:
    d2 = np.where(allowed, d2, np.inf)
  return int(np.argmin(d2))


def _jaw_contour_targets(points, normals):
  """[17, 2] (x, y) targets of the jaw contour landmarks 0-16, eye frame.

  iBUG's contour runs along the outline of the face seen from the front,
  from about the eye line down round the chin, evenly spaced. We trace the
  outline of the vertices that still face the camera a little (n_z > 0.3:
  slightly inside the true silhouette, like the BFM's fixed contour
  vertices) along directions fanning out from a point below the nose, keep
  it from just below the eye line to the chin and sample it evenly by arc
  length. The right half mirrors the left one exactly.
  """
  centre = np.array([0.0, -30.0])
  facing = normals[:, 2] > 0.3
  outline = []
  for a in np.linspace(-0.5 * np.pi, 0.0, 181):   # from straight left to down
    reach = (points[:, :2] - centre) @ np.array([np.sin(a), -np.cos(a)])
    outline.append(points[np.argmax(np.where(facing, reach, -np.inf)), :2])
  outline = np.array(outline)
  outline = outline[outline[:, 1] <= -3.0]
  outline = np.concatenate([outline, [[0.0, outline[-1, 1]]]])  # to x = 0
  arc = np.concatenate(
      [[0.0], np.cumsum(np.linalg.norm(np.diff(outline, axis=0), axis=1))])
  samples = np.linspace(0.0, arc[-1], 9)
  left = np.stack([np.interp(samples, arc, outline[:, k]) for k in range(2)],
                  -1)
  right = left[-2::-1] * np.array([-1.0, 1.0])
  return np.concatenate([left, right])


def find_landmark_indices(sheet):
  """[68] vertex ids of the 68 iBUG landmarks, in iBUG order."""
  u, v, points, normals = sheet.u, sheet.v, sheet.points, sheet.normals
  ids = np.zeros([68], np.int64)
  for k, target in enumerate(_jaw_contour_targets(points, normals)):
    d2 = np.sum((points[:, :2] - target)**2, -1)
    ids[k] = int(np.argmin(np.where(normals[:, 2] > 0.0, d2, np.inf)))
  for first, targets in ((17, _brow_targets(-1)), (22, _brow_targets(+1)),
                         (36, _eye_targets(-1)), (42, _eye_targets(+1))):
    for k, target in enumerate(targets):
      ids[first + k] = _nearest_vertex(u, v, target)
  line = mouth_line(u)
  for k, target in _nose_and_mouth_targets().items():
    # Keep the inner lip points on their own lip, above/below the mouth line.
    allowed = (v > line) if 61 <= k <= 63 else (
        (v < line) if 65 <= k <= 67 else None)
    ids[k] = _nearest_vertex(u, v, target, allowed)
  # The nose tip is the most protruding vertex, i.e. the one nearest the
  # camera in the frontal default pose.
  ids[30] = int(np.argmax(points[:, 2]))
  return ids


# ------------------------------------------------------------------------------
# Camera
# ------------------------------------------------------------------------------
def template_pose(points, landmarks):
  """[6] default pose putting the 5 alignment points on the 224 template.

  The rotation is Rx(pi) (model y up, z out -> camera y down, z forward), so
  X_c = (x, -y, -z) + t and the pixel is c + f (X_c.x, X_c.y) / X_c.z.
  Multiplied out, that is linear in t; we solve it by least squares for the
  two eye centres, the nose tip and the mouth corners.
  """
  five = np.stack([points[landmarks[36:42]].mean(0),
                   points[landmarks[42:48]].mean(0),
                   points[landmarks[30]], points[landmarks[48]],
                   points[landmarks[54]]])
  f, c = FOCAL_LENGTH, 0.5 * IMAGE_SIZE
  du = ALIGNMENT_TEMPLATE_224[:, 0] - c
  dv = ALIGNMENT_TEMPLATE_224[:, 1] - c
  x, y, z = five.T
  zeros, ones = np.zeros_like(x), np.ones_like(x)
  # du (tz - z) = f (x + tx)  and  dv (tz - z) = f (-y + ty).
  a = np.concatenate([np.stack([f * ones, zeros, -du], -1),
                      np.stack([zeros, f * ones, -dv], -1)])
  b = np.concatenate([-du * z - f * x, -dv * z + f * y])
  _, ty, tz = np.linalg.lstsq(a, b, rcond=None)[0]
  # The face is mirror-symmetric, so tx is 0 up to rounding: make it exact.
  return np.array([0.0, 0.0, np.pi, 0.0, ty, tz])
