"""The base head, its sheet grid and the mean face on it (`Sheet`).

The sheet is a 101 x 115 grid over angle theta around the vertical axis and
height; each row of the base head is a flattened ellipse, the bottom rows
roll under the jaw and the chin. The facial features (`features`) displace
it along its normal.
"""

import numpy as np

from mgc_tf.facemodel import mesh
from mgc_tf.facemodel.synthetic.features import feature_heights, region_masks
from mgc_tf.facemodel.synthetic.params import (AXIS_Y, CHIN_Y, JAW_RISE,
                                               NUM_COLUMNS, NUM_ROWS,
                                               ROLL_ANGLE, ROLL_RADIUS,
                                               ROLL_ROWS, THETA_MAX, Y_TOP)
from mgc_tf.facemodel.synthetic.smooth import hermite, smoothstep


def _front_z(y):
  """z of the base head on the mid-sagittal line (no nose, lips, chin), mm."""
  return hermite(
      y, [-120, -100, -85, -70, -50, -30, -10, 10, 30, 50, 70, 90, 110],
      [84, 86, 88, 90, 91, 91, 91, 93, 94, 92, 86, 76, 62])


def _half_width(y):
  """Half width of the base head at the sides (theta = 90 degrees), mm."""
  return hermite(y, [-120, -100, -80, -60, -40, -20, 0, 20, 40, 60, 80, 110],
                 [42, 49, 57, 63, 67, 71, 72, 70, 67, 63, 58, 50])


def _side_z(y):
  """z of the base head at the sides (theta = 90 degrees), mm."""
  return hermite(y, [-120, -100, -80, -60, -30, 110],
                 [30, 24, 14, 4, -5, -5])


def _flatness(y):
  """Exponent q of the cross-section z = z_front - depth (1 - cos theta)^q.

  q > 1 keeps the front of the face broad and flat and turns the sides back
  faster, as in a real face; the lower face is rounder (the dental arch).
  """
  return hermite(y, [-120, -60, 0, 60, 110], [1.05, 1.15, 1.35, 1.4, 1.3])


def _base_point(theta, y):
  """[..., 3] point of the base head at angle `theta` (rad), height y (mm)."""
  depth = _front_z(y) - _side_z(y)
  x = _half_width(y) * np.sin(theta)
  z = _front_z(y) - depth * np.abs(1.0 - np.cos(theta))**_flatness(y)
  return np.stack([x, y, z], axis=-1)


def _row_fractions(num):
  """[num] increasing fractions in [0, 1], denser between chin and brows.

  Row fraction g is at height y_b + (Y_TOP - y_b) g above the jaw border
  y_b. Rows are about 2.3 times denser from the chin to the brows, where the
  detail is, than on the forehead.
  """
  g = np.linspace(0.0, 1.0, 2001)
  y = CHIN_Y + (Y_TOP - CHIN_Y) * g
  density = 1.0 + 1.3 * smoothstep(y, -100, -88) * (
      1.0 - smoothstep(y, 25, 40))
  cumulative = np.concatenate(
      [[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]))])
  return np.interp(np.linspace(0.0, 1.0, num), cumulative / cumulative[-1], g)


def _column_angles():
  """[C] column angles theta, radians, 4x denser at the front than the sides."""
  s = np.linspace(-1.0, 1.0, NUM_COLUMNS)
  s[NUM_COLUMNS // 2] = 0.0
  a = 0.45
  return THETA_MAX * (a * s + (1.0 - a) * s**3)


def _base_grid():
  """[R, C, 3] the base head on the sheet grid, eye frame, mm.

  Rows go up (+y), columns to +x at the front. The bottom ROLL_ROWS rows roll
  under the jaw border, whose height rises from the chin towards the ears.
  """
  theta = _column_angles()[None, :]
  y_border = CHIN_Y + JAW_RISE * np.sin(theta)**2
  fractions = _row_fractions(NUM_ROWS - ROLL_ROWS)[:, None]
  upper = _base_point(theta, y_border + (Y_TOP - y_border) * fractions)
  # The roll: a quarter-torus of radius ROLL_RADIUS round the jaw border,
  # moving inwards (towards the vertical axis) and down.
  psi = ROLL_ANGLE * np.arange(ROLL_ROWS, 0, -1)[:, None, None] / ROLL_ROWS
  border = _base_point(theta, y_border)
  inward = -np.stack([np.sin(theta), 0 * theta, np.cos(theta)], -1)
  roll = (border + ROLL_RADIUS * (1.0 - np.cos(psi)) * inward -
          ROLL_RADIUS * np.sin(psi) * AXIS_Y)
  return np.concatenate([roll, upper], axis=0)


def _grid_normals(points):
  """[R, C, 3] unit normals of a grid surface, pointing out of the face."""
  d_row = np.gradient(points, axis=0)   # up
  d_col = np.gradient(points, axis=1)   # to +x at the front
  n = np.cross(d_col, d_row)
  return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _grid_triangles(rows, cols):
  """[2 (R-1) (C-1), 3] triangles of a row-major grid, CCW seen from outside.

  With rows going up and columns to +x, (i, j) -> (i, j+1) -> (i+1, j+1) is
  counter-clockwise seen from +z. Quads are split along diagonals mirrored
  about the centre column, so the mesh is left/right symmetric.
  """
  i, j = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
  v00 = i * cols + j
  v01, v10, v11 = v00 + 1, v00 + cols, v00 + cols + 1
  left = (j < (cols - 1) // 2)[..., None]
  tri_a = np.where(left, np.stack([v00, v01, v11], -1),
                   np.stack([v00, v01, v10], -1))
  tri_b = np.where(left, np.stack([v00, v11, v10], -1),
                   np.stack([v01, v11, v10], -1))
  return np.concatenate([tri_a.reshape([-1, 3]), tri_b.reshape([-1, 3])])


# ------------------------------------------------------------------------------
# The sheet: the mean face, shared by everything below
# ------------------------------------------------------------------------------
class Sheet:
  """The mean face on the flattened grid, eye frame (y = 0 on the eyes).

  Attributes:
    u, v: [V] frontal feature coordinates (x, y of the base head), mm.
    base_normal: [V, 3] unit normals of the base head (smooth everywhere).
    heights: dict of [V] feature heights along `base_normal`, mm.
    points: [V, 3] mean shape, mm.
    normals: [V, 3] unit vertex normals of the mean shape.
    triangles: [F, 3] counter-clockwise seen from outside.
    masks: dict of [V] colour-region masks in [0, 1].
  """

  def __init__(self):
    base = _base_grid()
    rows, cols = base.shape[:2]
    self.u = base[..., 0].reshape([-1])
    self.v = base[..., 1].reshape([-1])
    self.base_normal = _grid_normals(base).reshape([-1, 3])
    self.heights = feature_heights(self.u, self.v)
    self.points = (base.reshape([-1, 3]) +
                   self.base_normal * sum(self.heights.values())[:, None])
    self.triangles = _grid_triangles(rows, cols)
    self.normals = mesh.vertex_normals(self.points, self.triangles)
    self.masks = region_masks(self.u, self.v)
