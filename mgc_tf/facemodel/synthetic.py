"""The embedded SYNTHETIC face model, the default when no BFM file is given.

THIS IS NOT A MEASURED FACE MODEL. The Basel Face Model (BFM) cannot be
downloaded automatically (its licence has to be accepted by hand), so that
mgc_tf runs on a fresh machine we generate a stand-in here: a hand-designed,
analytic morphable model with the BFM's ranks (identity 80, expression 64,
albedo 80) and conventions. It looks like a human face and varies plausibly,
so the whole pipeline (rendering, losses, multi-view consistency, synthetic
datasets) can be exercised end to end, but its statistics are invented:
results obtained with it say nothing about real faces. Convert a real BFM
with `python -m mgc_tf.convert_face_model` for research.

`embedded_face_model()` builds it in NumPy in about a second and caches it
for the process. It is deterministic: no randomness except NumPy's legacy
`RandomState` with a fixed seed (its stream is frozen across NumPy releases),
and the stored arrays are rounded to a fixed grid so that last-bit
differences between BLAS/libm builds do not change them.

Geometry (11,615 vertices, 22,800 triangles, one manifold sheet):
  * The sheet is a 101 x 115 grid over a cylinder-like parameter domain:
    angle theta around the vertical axis (+/-100 degrees, columns denser at
    the front) and height (rows denser between the chin and the brows). The
    face therefore wraps round the cheeks towards the ears and still looks
    right at +/-60 degrees of yaw. Each row of the "base head" is a flattened
    ellipse (forehead, temples, cheeks, jaw taper); the bottom rows roll
    under the jaw and the chin.
  * Facial features are smooth height fields on frontal coordinates
    (u, v) = the (x, y) of the base head, in mm, that displace the base along
    its normal: brow ridge, eye sockets, eyeballs with a cornea, lid margins
    and upper-lid creases, nose (dorsum, rounded tip, alar wings and creases),
    dental-arch bulge, upper and lower lips meeting in a mouth line, philtrum,
    labiomental fold, chin, cheekbones, temples.
  * The 68 landmarks (iBUG order) are the vertices nearest analytic feature
    positions (lid curves, lip borders, ...); the jaw contour is the frontal
    outline of the face, sampled evenly by arc length.

Bases (pre-multiplied by their standard deviations, `FaceModel` convention):
  * Identity: 20 hand-designed regional deformations (face width, lower-face
    length, nose size, jaw width, chin, cheeks, nose length, brow ridge, ...)
    then seeded random mixtures of broad Gaussian bumps; orthogonalised in
    that order; the largest vertex displacement at one standard deviation
    decays from 5 mm (first) to about 0.4 mm (last).
  * Expression: 22 hand-designed motions windowed to the mouth, eye and brow
    regions (jaw open, smile, blink, brows up, pucker, squint, frown, wink,
    ...) then seeded random small bumps in the same regions; orthogonalised;
    largest displacement about 4.5 mm (smile, jaw) decaying to 0.3 mm.
  * Identity and expression components are shrunk where needed so that none
    folds the mesh over (lips through each other, a lid through the eyeball)
    within +/- FOLD_MARGIN standard deviations.
  * Albedo: smooth scalar fields times skin-like colour directions (lighter,
    redder, yellower; darker brows, bluer eyes, redder lips, flushed cheeks,
    beard shadow, ...), largest channel change 0.07 decaying to about 0.01;
    not orthogonalised, which would mix the colour directions into unnatural
    (green, blue) tints.

Conventions (DESIGN.md section 4): the BFM's axes (+x to the viewer's right,
+y up, +z out of the face), origin near the head centre, millimetres;
triangles counter-clockwise seen from outside; albedo linear RGB in [0, 1].
The camera is Deep3DFaceReconstruction's: focal length 1015 px for the 224
crop, default pose (rz, ry, rx) = (0, 0, pi) and a translation (0, ty, ~1100
mm) that puts the mean face's eye centres, nose tip and mouth corners on the
224 alignment template, so renders at the default pose look like aligned
crops.
"""

import functools

import numpy as np

from mgc_tf.facemodel.face_model import FaceModel

#: `FaceModel.name` of the model built here. Bump the suffix on any change
#: that alters the arrays: checkpoints trained on one version do not transfer.
MODEL_NAME = "embedded-synthetic-v1"

ID_RANK = 80
EXP_RANK = 64
ALBEDO_RANK = 80

#: Deep3DFaceReconstruction's focal length for the 224 crop, pixels.
FOCAL_LENGTH = 1015.0
IMAGE_SIZE = 224

#: 5-point alignment template of the 224 crop (DESIGN.md section 6), pixels:
#: eye centres (image left, image right), nose tip, mouth corners.
ALIGNMENT_TEMPLATE_224 = np.array(
    [[81.672, 88.471], [141.863, 88.463], [112.0, 132.863],
     [87.397, 153.563], [136.007, 153.552]], np.float64)

#: Seed of the legacy NumPy generator (its stream is frozen across releases).
RANDOM_SEED = 20200823

#: Shape components are shrunk, where needed, so that none folds the mesh
#: over within this many standard deviations.
FOLD_MARGIN = 3.0

# --- Sheet resolution ---------------------------------------------------------
# An odd number of columns puts one column exactly on the mid-sagittal plane
# (x = 0), which keeps the grid mirror-symmetric.
NUM_COLUMNS = 115
NUM_ROWS = 101
THETA_MAX = np.deg2rad(100.0)   # half the angular span of the sheet

# --- Vertical layout, mm, in the "eye frame" (y = 0 on the eye centres) -------
Y_TOP = 95.0            # top row of the sheet (above the hairline)
CHIN_Y = -100.0         # where the chin starts to roll under (at x = 0)
JAW_RISE = 32.0         # how much higher the jaw border is at the sides
ROLL_RADIUS = 16.0      # radius of the roll under the jaw and chin
ROLL_ANGLE = np.deg2rad(80.0)
ROLL_ROWS = 7
#: Eye-frame -> model-space shift: the sheet spans about -116 .. +95 mm in
#: the eye frame; this puts the origin near the middle of the head.
EYE_LINE_Y = 8.0

# --- Features, eye frame, mm ------------------------------------------------
EYE_X = 31.0              # eye centres at (+/-EYE_X, 0)
EYE_HALF_WIDTH = 15.0     # half the width of the eye opening
UPPER_LID_HEIGHT = 5.6    # lid margins above/below the centre line
LOWER_LID_HEIGHT = 4.4
CANTHAL_TILT = 1.0        # outer corners this much higher than the centre
IRIS_CENTRE_Y = 0.3
IRIS_RADIUS = 6.0
PUPIL_RADIUS = 2.2
NASION_Y = 8.0            # top of the nose bridge
NOSE_TIP_Y = -40.0        # pronasale (most protruding point)
SUBNASALE_Y = -48.0       # where the nose meets the upper lip
ALAR_X = 14.0             # centres of the nostril wings
MOUTH_Y = -65.0           # mouth line (stomion) at the centre
MOUTH_HALF_WIDTH = 24.5
UPPER_LIP_THICKNESS = 7.5  # vermilion heights at the centre
LOWER_LIP_THICKNESS = 9.5
BROW_Y = 21.0
BROW_X = 31.0
BROW_HALF_LENGTH = 22.0

# --- Colours, linear RGB ----------------------------------------------------
SKIN_RGB = (0.75, 0.54, 0.44)
LIP_RGB = (0.66, 0.33, 0.31)
MOUTH_LINE_RGB = (0.30, 0.11, 0.10)
BROW_RGB = (0.33, 0.22, 0.16)
SCLERA_RGB = (0.88, 0.86, 0.82)
CARUNCLE_RGB = (0.80, 0.62, 0.58)   # the pink inner eye corner
IRIS_RGB = (0.34, 0.21, 0.12)
LIMBUS_RGB = (0.16, 0.10, 0.06)     # the dark rim of the iris
PUPIL_RGB = (0.03, 0.03, 0.03)
LASH_RGB = (0.12, 0.09, 0.08)
NOSTRIL_RGB = (0.20, 0.09, 0.08)

# --- Regions the expression components are windowed to: centre, radii --------
MOUTH_REGION = ((0.0, -85.0), (55.0, 50.0))
EYE_REGIONS = (((-EYE_X, 2.0), (24.0, 16.0)), ((EYE_X, 2.0), (24.0, 16.0)))
BROW_REGIONS = (((-BROW_X, BROW_Y), (28.0, 13.0)),
                ((BROW_X, BROW_Y), (28.0, 13.0)))

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])
#: Albedo colour directions (largest channel 1): redder (more blood) and
#: yellower (more carotene and melanin) skin. Both are mild so that their
#: negatives (paler, bluer) still look like skin.
_REDDER = np.array([1.0, -0.3, -0.15])
_YELLOWER = np.array([0.3, 0.1, -1.0])


# ------------------------------------------------------------------------------
# Smooth building blocks
# ------------------------------------------------------------------------------
def _hermite(x, knots_x, knots_y):
  """C1 piecewise-cubic interpolation (Catmull-Rom tangents), clamped outside.

  Args:
    x: array of query points.
    knots_x: [n] increasing knot positions.
    knots_y: [n] knot values.

  Returns:
    Array shaped like `x`.
  """
  kx = np.asarray(knots_x, np.float64)
  ky = np.asarray(knots_y, np.float64)
  slopes = np.empty_like(ky)
  slopes[1:-1] = (ky[2:] - ky[:-2]) / (kx[2:] - kx[:-2])
  slopes[0] = (ky[1] - ky[0]) / (kx[1] - kx[0])
  slopes[-1] = (ky[-1] - ky[-2]) / (kx[-1] - kx[-2])
  x = np.clip(np.asarray(x, np.float64), kx[0], kx[-1])
  i = np.clip(np.searchsorted(kx, x, side="right") - 1, 0, len(kx) - 2)
  h = kx[i + 1] - kx[i]
  t = (x - kx[i]) / h
  t2, t3 = t * t, t * t * t
  return ((2 * t3 - 3 * t2 + 1) * ky[i] + (t3 - 2 * t2 + t) * h * slopes[i] +
          (-2 * t3 + 3 * t2) * ky[i + 1] + (t3 - t2) * h * slopes[i + 1])


def _gauss(u, v, cu, cv, su, sv):
  """Anisotropic Gaussian bump exp(-((u-cu)/su)^2/2 - ((v-cv)/sv)^2/2)."""
  return np.exp(-0.5 * (((u - cu) / su)**2 + ((v - cv) / sv)**2))


def _mirror_gauss(u, v, cu, cv, su, sv):
  """A Gaussian bump at (cu, cv) plus its mirror image at (-cu, cv)."""
  return _gauss(u, v, cu, cv, su, sv) + _gauss(u, v, -cu, cv, su, sv)


def _smoothstep(x, lo, hi):
  """0 below `lo`, 1 above `hi`, C1 cubic in between."""
  t = np.clip((np.asarray(x, np.float64) - lo) / (hi - lo), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def _ramp(x, width, sharpness=1.5):
  """0 for x <= 0, 1 for x >= width, linear in between, corners rounded.

  Unlike a smoothstep its slope never exceeds 1 / width, which bounds how
  much a displacement built from it compresses the surface (so a motion of
  amplitude A along it cannot fold the mesh while A < width).
  """
  x = np.asarray(x, np.float64)
  return (np.logaddexp(0.0, sharpness * x) -
          np.logaddexp(0.0, sharpness * (x - width))) / (sharpness * width)


def _softplus(x):
  return np.logaddexp(0.0, x)


def _along(direction, weight):
  """[V, 3]: `direction` ((3,) or [V, 3]) times the scalar field `weight`."""
  return np.asarray(direction) * np.asarray(weight)[:, None]


def _blend(base, colour, weight):
  """[..., 3]: base * (1 - weight) + colour * weight."""
  weight = np.asarray(weight)[..., None]
  return base * (1.0 - weight) + np.asarray(colour, np.float64) * weight


# ------------------------------------------------------------------------------
# Base head and the sheet grid
# ------------------------------------------------------------------------------
def _front_z(y):
  """z of the base head on the mid-sagittal line (no nose, lips, chin), mm."""
  return _hermite(
      y, [-120, -100, -85, -70, -50, -30, -10, 10, 30, 50, 70, 90, 110],
      [84, 86, 88, 90, 91, 91, 91, 93, 94, 92, 86, 76, 62])


def _half_width(y):
  """Half width of the base head at the sides (theta = 90 degrees), mm."""
  return _hermite(y, [-120, -100, -80, -60, -40, -20, 0, 20, 40, 60, 80, 110],
                  [42, 49, 57, 63, 67, 71, 72, 70, 67, 63, 58, 50])


def _side_z(y):
  """z of the base head at the sides (theta = 90 degrees), mm."""
  return _hermite(y, [-120, -100, -80, -60, -30, 110],
                  [30, 24, 14, 4, -5, -5])


def _flatness(y):
  """Exponent q of the cross-section z = z_front - depth (1 - cos theta)^q.

  q > 1 keeps the front of the face broad and flat and turns the sides back
  faster, as in a real face; the lower face is rounder (the dental arch).
  """
  return _hermite(y, [-120, -60, 0, 60, 110], [1.05, 1.15, 1.35, 1.4, 1.3])


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
  density = 1.0 + 1.3 * _smoothstep(y, -100, -88) * (
      1.0 - _smoothstep(y, 25, 40))
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
          ROLL_RADIUS * np.sin(psi) * _Y)
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


def _vertex_normals(points, triangles):
  """[V, 3] unit vertex normals: normalised sum of adjacent face normals."""
  a, b, c = (points[triangles[:, k]] for k in range(3))
  face_normals = np.cross(b - a, c - a)
  normals = np.zeros_like(points)
  for k in range(3):
    np.add.at(normals, triangles[:, k], face_normals)
  return normals / np.maximum(
      np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


# ------------------------------------------------------------------------------
# Feature curves (u, v in the eye frame, mm)
# ------------------------------------------------------------------------------
def _eye_coords(u):
  """Position s along an eye opening: -1 inner corner, +1 outer corner."""
  return (np.abs(u) - EYE_X) / EYE_HALF_WIDTH


def _eyelid_curves(u):
  """(upper, lower) heights of the lid margins above column u, mm.

  The opening is an almond: closed at the corners, the upper lid peaking a
  little medial of the centre, the outer corner higher than the inner one.
  """
  s = _eye_coords(u)
  w = np.clip(1.0 - s * s, 0.0, None)
  upper = CANTHAL_TILT * s + UPPER_LID_HEIGHT * w**0.8 * (1.0 - 0.12 * s)
  lower = CANTHAL_TILT * s - LOWER_LID_HEIGHT * w**0.9 * (1.0 + 0.1 * s)
  return upper, lower


def _eye_opening(u, v, soft=0.35):
  """[V] in [0, 1]: 1 inside the eye openings (the visible eyeball).

  Args:
    u, v: [V] frontal coordinates, mm.
    soft: half width of the transition across the lid margins, mm.
  """
  upper, lower = _eyelid_curves(u)
  margin = np.minimum(upper - v, v - lower)     # mm to the nearer lid margin
  inside_corners = _smoothstep(1.0 - np.abs(_eye_coords(u)), 0.0, 0.06)
  return _smoothstep(margin, -soft, soft) * inside_corners


def _iris_distance(u, v):
  """[V] distance from (u, v) to the nearer iris centre, mm."""
  return np.hypot(np.abs(u) - EYE_X, v - IRIS_CENTRE_Y)


def _iris_mask(u, v):
  """[V] in [0, 1]: the irises (where visible, see `_eye_opening`)."""
  return _smoothstep(IRIS_RADIUS - _iris_distance(u, v), -0.7, 0.7)


def _mouth_line(u):
  """[V] height of the mouth line (where the lips meet) at column u, mm."""
  s = u / MOUTH_HALF_WIDTH
  return MOUTH_Y + 0.6 * s * s


def _lip_thickness(u):
  """(upper, lower) vermilion heights above/below the mouth line, mm.

  Both taper to zero at the mouth corners; the upper lip has a Cupid's bow (a
  dip at the centre between two peaks).
  """
  s = u / MOUTH_HALF_WIDTH
  taper = np.clip(1.0 - s * s, 0.0, None)**0.55
  bow = (1.0 - 0.16 * np.exp(-0.5 * (u / 2.5)**2) +
         0.05 * np.exp(-0.5 * ((np.abs(u) - 6.0) / 3.0)**2))
  return UPPER_LIP_THICKNESS * taper * bow, LOWER_LIP_THICKNESS * taper


def _brow_centre_line(t):
  """Height of the middle of a brow at t = 0 (inner end) .. 1 (tail), mm.

  An arch peaking at about 60% of the brow's length.
  """
  return BROW_Y - 4.5 + 18.3 * t - 16.3 * t * t


def _brow_t(u):
  """Position t along a brow: 0 at the inner end, 1 at the tail."""
  return (np.abs(u) - (BROW_X - BROW_HALF_LENGTH)) / (2.0 * BROW_HALF_LENGTH)


# ------------------------------------------------------------------------------
# Feature heights (mm along the base normal)
# ------------------------------------------------------------------------------
def _nose_height(u, v):
  """Nose: dorsum from the nasion to a rounded tip, alar wings and creases."""
  n, t, b = NASION_Y, NOSE_TIP_Y, SUBNASALE_Y
  # Mid-line profile: rises along the dorsum, peaks at the tip, then drops
  # steeply (the underside of the nose) to the subnasale.
  profile = np.maximum(_hermite(
      v, [b - 12, b - 1.5, b, b + 2, t - 3, t, t + 3, t + 8, t + 20, t + 35,
          n - 2, n + 4, n + 14, n + 32],
      [0, 0, 5, 17, 26, 29, 28.5, 23.5, 15, 6.5, 1.5, 0.5, 0, 0]), 0.0)
  # Half width (Gaussian sigma) of the cross-section: narrow bridge, wider
  # root between the eyes and tip lobule.
  width = _hermite(v, [b - 12, b, b + 4, t, t + 5, t + 25, n - 3, n + 12],
                   [6, 6, 7, 7.5, 7, 5.8, 8.5, 12])
  dorsum = profile * np.exp(-0.5 * (u / width)**2)
  wings = 8.5 * _mirror_gauss(u, v, ALAR_X, b + 5.0, 5.5, 4.2)
  # The alar crease: a groove round the upper and outer edge of each wing.
  ring = np.hypot((np.abs(u) - ALAR_X) / 1.1, v - (b + 5.5))
  crease = (-1.2 * np.exp(-0.5 * ((ring - 6.8) / 1.2)**2) *
            _smoothstep(v, b + 1.0, b + 6.0))
  return (np.maximum(dorsum, wings) + 0.15 * np.minimum(dorsum, wings) +
          crease)


def _eye_height(u, v):
  """Eye sockets, eyeballs with corneas, lid margins, lid creases."""
  du = np.abs(u) - EYE_X
  socket = -8.5 * _gauss(du, v, 0.0, 2.0, 14.0, 11.0)
  ball = 7.5 * np.clip(1.0 - (du**2 + (v - 0.5)**2) / 16.0**2, 0.0, None)**2
  cornea = 1.2 * np.clip(1.0 - _iris_distance(u, v)**2 / 6.5**2, 0.0, None)**2
  upper, lower = _eyelid_curves(u)
  along = _smoothstep(1.25 - np.abs(_eye_coords(u)), 0.0, 0.4)
  crease = -1.0 * np.exp(-0.5 * ((v - upper - 4.5) / 1.4)**2) * along
  lower_lid = 0.6 * np.exp(-0.5 * ((v - lower + 2.0) / 1.5)**2) * along
  # The opening sits 1.6 mm behind the lid margins: that step is what makes
  # the lids read as lids.
  opening = _eye_opening(u, v)
  return socket + ball + opening * (cornea - 1.6) + crease + lower_lid


def _brow_height(u, v):
  """Glabella and supraorbital ridges."""
  return (4.0 * _gauss(u, v, 0.0, 14.0, 12.0, 8.0) +
          3.0 * _mirror_gauss(u, v, BROW_X, 17.0, 16.0, 7.0))


def _upper_lip_profile(q):
  """Upper lip height / its peak at q = (v - mouth line) / lip thickness.

  A steep rise out of the mouth line, a rounded vermilion, a small ridge at
  its border (the "white roll"), then the skin of the upper lip.
  """
  return np.maximum(_hermite(
      q, [0, 0.1, 0.3, 0.55, 0.85, 1.0, 1.15, 1.6, 2.4],
      [0, 0.55, 0.92, 1.0, 0.8, 0.62, 0.6, 0.25, 0]), 0.0) * (q > 0)


def _lower_lip_profile(q):
  """Lower lip height / its peak at q = (mouth line - v) / lip thickness.

  Fades smoothly into the skin below.
  """
  return np.maximum(_hermite(
      q, [0, 0.1, 0.3, 0.5, 0.8, 1.0, 1.3, 1.9],
      [0, 0.5, 0.9, 1.0, 0.8, 0.55, 0.2, 0]), 0.0) * (q > 0)


def _lips_height(u, v):
  """Upper and lower lips meeting in a mouth-line groove, dimpled corners."""
  line = _mouth_line(u)
  upper, lower = _lip_thickness(u)
  s = u / MOUTH_HALF_WIDTH
  taper = np.clip(1.0 - s * s, 0.0, None)**0.5
  upper_lip = 4.6 * taper * _upper_lip_profile(
      (v - line) / np.maximum(upper, 0.05))
  lower_lip = 4.4 * taper * _lower_lip_profile(
      (line - v) / np.maximum(lower, 0.05))
  corners = -1.5 * _mirror_gauss(u, v, MOUTH_HALF_WIDTH, MOUTH_Y + 0.5,
                                 2.5, 2.5)
  return upper_lip + lower_lip + corners


def _mouth_height(u, v):
  """Dental-arch bulge, lips, philtrum, labiomental fold and chin."""
  arch = 6.0 * _gauss(u, v, 0.0, MOUTH_Y + 5.0, 30.0, 20.0)
  philtrum_y = 0.5 * (SUBNASALE_Y + MOUTH_Y + UPPER_LIP_THICKNESS)
  philtrum = (-0.7 * _gauss(u, v, 0.0, philtrum_y, 2.2, 3.0) +
              0.5 * _mirror_gauss(u, v, 5.0, philtrum_y, 2.0, 3.5))
  labiomental = -3.0 * _gauss(u, v, 0.0, -82.0, 14.0, 4.0)
  chin = 7.0 * _gauss(u, v, 0.0, -96.0, 18.0, 9.0)
  return arch + _lips_height(u, v) + philtrum + labiomental + chin


def _cheek_height(u, v):
  """Cheekbones, cheek fat pads and temple hollows."""
  return (5.0 * _mirror_gauss(u, v, 48.0, -18.0, 15.0, 12.0) +
          3.0 * _mirror_gauss(u, v, 36.0, -36.0, 13.0, 13.0) -
          3.0 * _mirror_gauss(u, v, 60.0, 35.0, 10.0, 14.0))


def _feature_heights(u, v):
  """Dict of named [V] height fields, mm along the base normal."""
  return {
      "nose": _nose_height(u, v),
      "eyes": _eye_height(u, v),
      "brows": _brow_height(u, v),
      "mouth": _mouth_height(u, v),
      "cheeks": _cheek_height(u, v),
  }


# ------------------------------------------------------------------------------
# Colour regions, mean albedo and skin mask
# ------------------------------------------------------------------------------
def _brow_mask(u, v):
  """[V] in [0, 1]: the eyebrows, thick at the inner end, thin at the tail."""
  t = _brow_t(u)
  half_thickness = 4.4 - 2.9 * np.clip(t, 0.0, 1.0)**1.3
  across = _smoothstep(half_thickness - np.abs(v - _brow_centre_line(t)),
                       -1.0, 1.0)
  along = _smoothstep(t, -0.04, 0.08) * _smoothstep(1.0 - t, -0.06, 0.08)
  return across * along


def _lash_mask(u, v):
  """[V] in [0, 1]: a dark band just above the upper lid margins (lashes)."""
  upper, _ = _eyelid_curves(u)
  s = _eye_coords(u)
  band = (_smoothstep(v - upper, -0.3, 0.1) *
          _smoothstep(upper + 1.3 - v, -0.2, 0.5))
  # Full strength from the middle to the outer corner, half at the inner one.
  return (band * _smoothstep(1.05 - np.abs(s), 0.0, 0.25) *
          (0.5 + 0.5 * _smoothstep(s, -0.8, 0.4)))


def _upper_lip_mask(u, v):
  """[V] in [0, 1]: the upper lip vermilion."""
  upper, _ = _lip_thickness(u)
  line = _mouth_line(u)
  return (_smoothstep(v, line - 0.3, line + 0.3) *
          _smoothstep(line + upper - v, -0.9, 0.9) * (upper > 0.05))


def _lower_lip_mask(u, v):
  """[V] in [0, 1]: the lower lip vermilion."""
  _, lower = _lip_thickness(u)
  line = _mouth_line(u)
  return (_smoothstep(line - v, -0.3, 0.3) *
          _smoothstep(v - (line - lower), -0.9, 0.9) * (lower > 0.05))


def _mouth_line_mask(u, v):
  """[V] in [0, 1]: the dark line where the lips meet."""
  s = u / MOUTH_HALF_WIDTH
  return (np.exp(-0.5 * ((v - _mouth_line(u)) / 0.7)**2) *
          _smoothstep(1.0 - np.abs(s), 0.0, 0.12))


def _nostril_mask(u, v):
  """[V] in [0, 1]: the nostrils, on the underside of the nose."""
  return np.clip(1.3 * _mirror_gauss(u, v, 6.5, SUBNASALE_Y + 1.2, 2.6, 1.2),
                 0.0, 1.0)


def _region_masks(u, v):
  """Dict of [V] masks in [0, 1] used by the albedo, skin mask and bases."""
  return {
      "eye_opening": _eye_opening(u, v, soft=0.6),
      # The eyes as the skin mask sees them: the opening plus a margin.
      "eye_region": _eye_opening(u, v, soft=1.2),
      "lashes": _lash_mask(u, v),
      "brows": _brow_mask(u, v),
      "lips": np.clip(_upper_lip_mask(u, v) + _lower_lip_mask(u, v), 0.0, 1.0),
      "mouth_line": _mouth_line_mask(u, v),
      "nostrils": _nostril_mask(u, v),
  }


def _eye_colour(u, v):
  """[V, 3] colour of the eyeballs: sclera (pink at the inner corner), iris
  with a dark rim, pupil."""
  d = _iris_distance(u, v)
  sclera = _blend(np.broadcast_to(SCLERA_RGB, d.shape + (3,)), CARUNCLE_RGB,
                  _smoothstep(-_eye_coords(u), 0.6, 0.95))
  iris = _blend(np.broadcast_to(IRIS_RGB, d.shape + (3,)), LIMBUS_RGB,
                _smoothstep(d, IRIS_RADIUS - 1.8, IRIS_RADIUS))
  colour = sclera + (iris - sclera) * _iris_mask(u, v)[:, None]
  return _blend(colour, PUPIL_RGB, _smoothstep(PUPIL_RADIUS - d, -0.4, 0.4))


def _mean_albedo(u, v, masks):
  """[V, 3] mean albedo, linear RGB in [0, 1]."""
  skin = np.broadcast_to(np.asarray(SKIN_RGB), u.shape + (3,)).copy()
  # Gentle regional tints, as in real faces: rosier cheeks and nose tip, a
  # paler forehead, a darker lower face and shadows under the eyes.
  skin += np.array([0.04, -0.025, -0.015]) * (
      _mirror_gauss(u, v, 40.0, -30.0, 14.0, 13.0) +
      0.7 * _gauss(u, v, 0.0, NOSE_TIP_Y + 2.0, 9.0, 7.0))[:, None]
  skin += 0.03 * _gauss(u, v, 0.0, 50.0, 40.0, 25.0)[:, None]
  skin -= (np.array([0.03, 0.035, 0.03]) *
           _gauss(u, v, 0.0, -95.0, 30.0, 22.0)[:, None])
  skin -= (np.array([0.05, 0.06, 0.04]) *
           _mirror_gauss(u, v, EYE_X, -7.0, 13.0, 3.5)[:, None])
  colour = _blend(skin, BROW_RGB, 0.85 * masks["brows"])
  colour = _blend(colour, LIP_RGB, masks["lips"])
  colour = _blend(colour, MOUTH_LINE_RGB, masks["mouth_line"])
  colour = _blend(colour, NOSTRIL_RGB, masks["nostrils"])
  colour = _blend(colour, LASH_RGB, 0.85 * masks["lashes"])
  opening = masks["eye_opening"][:, None]
  colour = colour * (1.0 - opening) + _eye_colour(u, v) * opening
  return np.clip(colour, 0.0, 1.0)


def _skin_mask(masks):
  """[V] in [0, 1]: 1 on skin; 0 on eyes, brows, lips (like Deep3D's mask)."""
  not_skin = np.maximum.reduce([masks["eye_region"], masks["lashes"],
                                masks["brows"], masks["lips"],
                                masks["mouth_line"], masks["nostrils"]])
  return np.clip(1.0 - not_skin, 0.0, 1.0)


# ------------------------------------------------------------------------------
# The sheet: the mean face, shared by everything below
# ------------------------------------------------------------------------------
class _Sheet:
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
    self.heights = _feature_heights(self.u, self.v)
    self.points = (base.reshape([-1, 3]) +
                   self.base_normal * sum(self.heights.values())[:, None])
    self.triangles = _grid_triangles(rows, cols)
    self.normals = _vertex_normals(self.points, self.triangles)
    self.masks = _region_masks(self.u, self.v)


# ------------------------------------------------------------------------------
# Landmarks
# ------------------------------------------------------------------------------
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
  upper, _ = _eyelid_curves(u_upper)
  _, lower = _eyelid_curves(u_lower)
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
  points = np.stack([side * u, _brow_centre_line(t) + 1.2], -1)
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
    border = 0.0 if k in (0, 6) else _lip_thickness(u)[0]
    targets[48 + k] = (u, _mouth_line(u) + border)
  for k, u in enumerate([0.6 * w, 6.0, 0.0, -6.0, -0.6 * w]):
    targets[55 + k] = (u, _mouth_line(u) - _lip_thickness(u)[1])
  # Inner lip contour: inner corners (60, 64), upper (61-63), lower (65-67),
  # just above and below the mouth line.
  for k, u in {60: -0.82 * w, 64: 0.82 * w}.items():
    targets[k] = (u, _mouth_line(u))
  for k, u in enumerate([-8.0, 0.0, 8.0]):
    targets[61 + k] = (u, _mouth_line(u) + 0.8)
  for k, u in enumerate([8.0, 0.0, -8.0]):
    targets[65 + k] = (u, _mouth_line(u) - 0.8)
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


def _landmark_indices(sheet):
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
  line = _mouth_line(u)
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
def _template_pose(points, landmarks):
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


# ------------------------------------------------------------------------------
# Bases
# ------------------------------------------------------------------------------
def _decaying_std(rank, first, decay, power):
  """[rank] standard deviations first * (1 + k / decay)^-power."""
  return first * (1.0 + np.arange(rank) / decay)**(-power)


def _orthogonalise(fields):
  """[K, V, C] -> [K, V, C] unit-norm, mutually orthogonal fields.

  Gram-Schmidt in the given order (classical, each projection done twice for
  accuracy): early, hand-designed components stay close to their design and
  later ones only add what is new. Unlike a library QR this fixes the signs:
  each output has a positive dot product with its input.
  """
  flat = np.array([np.asarray(f, np.float64).reshape([-1]) for f in fields])
  for k in range(flat.shape[0]):
    for _ in range(2):
      flat[k] -= (flat[:k] @ flat[k]) @ flat[:k]
    norm = np.linalg.norm(flat[k])
    if norm < 1e-9:
      raise ValueError(f"basis component {k} is linearly dependent")
    flat[k] /= norm
  return flat.reshape((len(fields),) + np.shape(fields[0]))


def _scale_to_peak(fields, peak_std, per_vertex_norm=True):
  """[K, V, C] -> [V, C, K], each field scaled to its peak std.

  Args:
    fields: K fields [V, C].
    peak_std: [K] largest change at one standard deviation: of a vertex
      (displacement length) if `per_vertex_norm`, else of any channel.
    per_vertex_norm: see `peak_std`.
  """
  fields = np.asarray(fields, np.float64)
  if per_vertex_norm:
    peaks = np.linalg.norm(fields, axis=-1).max(axis=-1)
  else:
    peaks = np.abs(fields).max(axis=(1, 2))
  scaled = fields * (np.asarray(peak_std) / peaks)[:, None, None]
  return np.transpose(scaled, [1, 2, 0])


def _fold_limits(points, triangles, basis):
  """[K] smallest |coefficient| at which each component folds the mesh.

  For a triangle with edges e1, e2 displaced by s (d1, d2), the normal is
  n(s) = (e1 + s d1) x (e2 + s d2) and n(s) . n(0) = a + b s + c s^2; the
  triangle flips over at the real root of that quadratic nearest zero.

  Args:
    points: [V, 3] mean shape.
    triangles: [F, 3].
    basis: [V, 3, K] displacements per unit coefficient.

  Returns:
    [K] limits, inf where no triangle ever flips.
  """
  p0, p1, p2 = (points[triangles[:, k]] for k in range(3))
  e1, e2 = p1 - p0, p2 - p0
  n0 = np.cross(e1, e2)
  a = np.sum(n0 * n0, -1)[:, None]
  # Per axis, [F, K] edge displacements (gathering [V, K] slices is much
  # faster than gathering [V, 3, K] rows).
  d1, d2 = [], []
  for axis in range(3):
    component = np.ascontiguousarray(basis[:, axis, :])
    d1.append(component[triangles[:, 1]] - component[triangles[:, 0]])
    d2.append(component[triangles[:, 2]] - component[triangles[:, 0]])
  # Triple products: n0.(e1 x d2) = d2.(n0 x e1), n0.(d1 x e2) = d1.(e2 x n0).
  m1, m2 = np.cross(n0, e1), np.cross(e2, n0)
  b = sum(d2[i] * m1[:, i:i + 1] + d1[i] * m2[:, i:i + 1] for i in range(3))
  (x1, y1, z1), (x2, y2, z2) = d1, d2
  c = (n0[:, 0:1] * (y1 * z2 - z1 * y2) + n0[:, 1:2] * (z1 * x2 - x1 * z2) +
       n0[:, 2:3] * (x1 * y2 - y1 * x2))
  disc = b * b - 4.0 * a * c
  # The real roots are 2a / (-b -+ sqrt(disc)) (cancellation-free form); the
  # one nearer zero has the larger denominator, |b| + sqrt(disc).
  with np.errstate(divide="ignore"):
    nearest = 2.0 * a / (np.abs(b) + np.sqrt(np.maximum(disc, 0.0)))
  return np.where(disc >= 0.0, nearest, np.inf).min(axis=0)


def _limit_folding(sheet, basis):
  """[V, 3, K]: components shrunk where needed so that none folds the mean
  mesh within +/- FOLD_MARGIN standard deviations."""
  limits = _fold_limits(sheet.points, sheet.triangles, basis)
  return basis * np.minimum(1.0, limits / FOLD_MARGIN)[None, None, :]


def _random_bump_field(rng, u, v, direction, centre, sigma_range, count=3):
  """[V, 3] sum of `count` Gaussian bumps with random centres and directions.

  Args:
    rng: np.random.RandomState.
    u, v: [V] frontal coordinates, mm.
    direction: callable(rng) -> (3,) or [V, 3] displacement direction.
    centre: callable(rng) -> (cu, cv), mm.
    sigma_range: (lo, hi) range of the bump radii, mm.
    count: number of bumps.
  """
  field = np.zeros([u.shape[0], 3])
  for _ in range(count):
    cu, cv = centre(rng)
    su, sv = rng.uniform(*sigma_range, size=2)
    field += rng.normal() * _along(direction(rng),
                                   _gauss(u, v, cu, cv, su, sv))
  return field


def _identity_basis(sheet, rng):
  """[V, 3, ID_RANK] identity basis, mm per standard deviation."""
  u, v, n, h = sheet.u, sheet.v, sheet.base_normal, sheet.heights
  x = sheet.points[:, 0]
  # Nose length: 0 at the nasion, 1 from the tip to the base, 0 on the lip.
  nose_drop = (np.exp(-0.5 * (u / 14.0)**2) *
               (1.0 - _smoothstep(v, NOSE_TIP_Y, NASION_Y)) *
               _smoothstep(v, SUBNASALE_Y - 10.0, SUBNASALE_Y))
  eye_spacing = np.sign(u) * _mirror_gauss(u, v, EYE_X, 2.0, 14.0, 10.0)
  designed = [
      _along(_X, x),                                          # face width
      _along(_Y, -12.0 * _softplus(-v / 12.0)),               # lower face
      _along(n, h["nose"]),                                   # nose size
      _along(_X, x * _smoothstep(-v, 30.0, 85.0)),            # jaw width
      _along(n, _gauss(u, v, 0.0, -98.0, 20.0, 12.0)),        # chin
      _along(n, _mirror_gauss(u, v, 40.0, -38.0, 17.0, 15.0)),  # cheeks
      _along(_Z, -(x / 70.0)**2),                             # roundness
      _along(-_Y, nose_drop),                                 # nose length
      _along(n, h["brows"]),                                  # brow ridge
      _along(_Z, -_smoothstep(v, 10.0, 95.0) * (v - 10.0) / 85.0),  # forehead
      _along(_X, u * _gauss(u, v, 0.0, -42.0, 16.0, 8.0)),    # nose width
      _along(n, _lips_height(u, v)),                          # lip fullness
      _along(_X, eye_spacing),                                # eye spacing
      _along(_X, u * _gauss(u, v, 0.0, MOUTH_Y, 30.0, 9.0)),  # mouth width
      _along(n, -_mirror_gauss(u, v, EYE_X, 2.0, 16.0, 12.0)),  # eye depth
      _along(n, h["nose"] * _smoothstep(v, -34.0, -10.0)),    # nasal bridge
      _along(n, _mirror_gauss(u, v, 48.0, -18.0, 15.0, 12.0)),  # cheekbones
      _along(-_Y, _smoothstep(-v, 70.0, 105.0)),              # chin height
      _along(_Y, _gauss(u, v, 0.0, 8.0, 50.0, 18.0)),         # eye height
      _along(_X, x * _smoothstep(v, 15.0, 80.0)),             # forehead width
  ]

  # Higher components: broad bumps anywhere on the face, mostly along the
  # normal (fuller / flatter) with some sideways shift.
  def centre(r):
    return r.uniform(-65.0, 65.0), r.uniform(-110.0, 85.0)

  def direction(r):
    return 0.7 * n * r.normal() + 0.4 * r.normal(size=3)

  fields = designed + [
      _random_bump_field(rng, u, v, direction, centre, (14.0, 35.0))
      for _ in range(ID_RANK - len(designed))]
  basis = _scale_to_peak(_orthogonalise(fields),
                         _decaying_std(ID_RANK, 5.0, 3.0, 0.75))
  return _limit_folding(sheet, basis)


def _region_window(u, v, region):
  """[V] in [0, 1]: (1 - r^4)^2 inside the ellipse `region`, 0 outside.

  Flat in the middle (it barely alters the motion it windows), C1 at the
  border.
  """
  (cu, cv), (ru, rv) = region
  r2 = ((u - cu) / ru)**2 + ((v - cv) / rv)**2
  return np.clip(1.0 - r2 * r2, 0.0, None)**2


def _eyelid_fields(u, v):
  """(blink, squint): [V, 3] eyelid motions of both eyes.

  The lid travel at each column is proportional to the height of the opening
  there, and vertices inside the opening follow in proportion to their height
  in it: closing compresses the opening evenly instead of pushing the lid
  through the eyeball (a linear model cannot hide vertices).
  """
  upper, lower = _eyelid_curves(u)
  gap = np.maximum(upper - lower, 1e-3)
  open_fraction = gap / (UPPER_LID_HEIGHT + LOWER_LID_HEIGHT)
  in_opening = np.clip((v - lower) / gap, 0.0, 1.0)
  above = np.clip(v - upper, 0.0, None)
  below = np.clip(lower - v, 0.0, None)
  near_eye = open_fraction * _smoothstep(1.4 - np.abs(_eye_coords(u)), 0.0, 0.4)
  # Upper lid down: 0 at the lower margin, 1 at the upper one, fading out
  # over 12 mm above it (the skin up to the brow stretches).
  upper_lid = np.where(v > upper, 1.0 - _ramp(above - 2.0, 12.0),
                       in_opening) * (v > lower)
  # Lower lid up: 1 at the lower margin, 0 at the upper one, fading out over
  # 10 mm below it (the cheek follows).
  lower_lid = np.where(v < lower, 1.0 - _ramp(below - 1.0, 10.0),
                       1.0 - in_opening) * (v < upper)
  return (_along(-_Y, upper_lid * near_eye),
          _along(_Y + 0.15 * _Z, lower_lid * near_eye))


def _expression_basis(sheet, rng):
  """[V, 3, EXP_RANK] expression basis, mm per standard deviation."""
  u, v, n = sheet.u, sheet.v, sheet.base_normal
  y, z = sheet.points[:, 1], sheet.points[:, 2]
  mouth = _region_window(u, v, MOUTH_REGION)[:, None]
  eye_l, eye_r = (_region_window(u, v, r)[:, None] for r in EYE_REGIONS)
  brow_l, brow_r = (_region_window(u, v, r)[:, None] for r in BROW_REGIONS)
  image_left = -np.sign(u)[:, None]    # +1 on x < 0, -1 on x > 0
  side, ones = np.sign(u), np.ones_like(u)
  line = _mouth_line(u)
  # Weights growing linearly away from the mouth line, so that the lips part
  # or press together without passing through each other.
  below_line = _ramp(line - v, 10.0)
  upper_lip = _ramp(v - line, 6.0) * (1.0 - _ramp(v - line - 8.0, 10.0))
  lower_lip = _ramp(line - v, 6.0) * (1.0 - _ramp(line - v - 8.0, 10.0))
  lips_centre = _gauss(u, v, 0.0, MOUTH_Y, 16.0, 30.0)
  corners = _mirror_gauss(u, v, MOUTH_HALF_WIDTH, MOUTH_Y, 9.0, 8.0)

  # Jaw opening: everything below the mouth line rotates about a hinge near
  # the ears (a rotation about +x moves the chin down and back).
  hinge_y, hinge_z = -20.0, -5.0
  jaw = (_along(_Y, -(z - hinge_z) * below_line) +
         _along(_Z, (y - hinge_y) * below_line))
  smile = (_along(np.stack([0.6 * side, ones, -0.6 * ones], -1), corners) +
           _along(_Y + 0.5 * _Z,
                  0.5 * _mirror_gauss(u, v, 36.0, -42.0, 12.0, 10.0)))
  blink, squint = _eyelid_fields(u, v)
  brows_up = _along(_Y + 0.15 * _Z,
                    _mirror_gauss(u, v, BROW_X, BROW_Y, 22.0, 8.0))
  inner_brows = _mirror_gauss(u, v, 14.0, BROW_Y - 2.0, 9.0, 7.0)
  outer_brows = _mirror_gauss(u, v, 46.0, BROW_Y, 9.0, 7.0)
  frown = _along(np.stack([-0.8 * side, -0.7 * ones, 0.3 * ones], -1),
                 inner_brows)
  pucker = _along(np.stack([-u / 20.0, 0 * u, ones], -1),
                  _gauss(u, v, 0.0, MOUTH_Y, 18.0, 9.0))
  stretch = _along(np.stack([side, 0 * u, -0.3 * ones], -1), corners)
  eyes, wink = eye_l + eye_r, eye_l - eye_r
  brows, one_brow = brow_l + brow_r, brow_l - brow_r
  designed = [
      mouth * jaw,                                               # jaw open
      mouth * smile,                                             # smile
      eyes * blink,                                              # blink
      brows * brows_up,                                          # brows up
      mouth * pucker,                                            # pucker
      mouth * stretch,                                           # stretch
      mouth * _along(-_Y, corners),                              # corners down
      eyes * squint,                                             # squint
      mouth * _along(_Y + 0.4 * _Z, lips_centre * upper_lip),    # lip up
      mouth * _along(-_Y + 0.3 * _Z, lips_centre * lower_lip),   # lip down
      brows * frown,                                             # frown
      wink * blink,                                              # wink
      mouth * smile * image_left,                                # half smile
      one_brow * brows_up,                                       # one brow up
      mouth * _along(_X, _gauss(u, v, 0.0, MOUTH_Y, 24.0, 12.0)),  # mouth side
      mouth * _along(-n, _lips_height(u, v)),                    # lips pressed
      mouth * _along(n, _mirror_gauss(u, v, 36.0, -58.0, 13.0, 13.0)),  # puff
      mouth * _along(_Y + _Z, _gauss(u, v, 0.0, -95.0, 16.0, 10.0)),  # chin up
      brows * _along(_Y, inner_brows),                           # inner up
      brows * _along(_Y, outer_brows),                           # outer up
      wink * squint,                                             # one squint
      mouth * _along(_X, below_line),                            # jaw side
  ]

  # Higher components: small random bumps, cycling through the mouth, the
  # eyes and the brows (eye and brow bumps on either side).
  def mouth_centre(r):
    return r.uniform(-28.0, 28.0), r.uniform(-88.0, -52.0)

  def eye_centre(r):
    return (r.choice([-1.0, 1.0]) * r.uniform(EYE_X - 10.0, EYE_X + 10.0),
            r.uniform(-5.0, 7.0))

  def brow_centre(r):
    return (r.choice([-1.0, 1.0]) * r.uniform(BROW_X - 18.0, BROW_X + 18.0),
            r.uniform(BROW_Y - 5.0, BROW_Y + 5.0))

  def direction(r):
    return 0.5 * n * r.normal() + 0.6 * r.normal(size=3)

  families = [(mouth_centre, (5.0, 12.0), mouth),
              (eye_centre, (4.0, 9.0), eyes),
              (brow_centre, (5.0, 10.0), brows)]
  fields = list(designed)
  while len(fields) < EXP_RANK:
    centre, sigmas, window = families[len(fields) % 3]
    fields.append(window * _random_bump_field(rng, u, v, direction, centre,
                                              sigmas))
  basis = _scale_to_peak(_orthogonalise(fields),
                         _decaying_std(EXP_RANK, 7.0, 3.0, 1.0))
  return _limit_folding(sheet, basis)


def _albedo_basis(sheet, skin_mask, rng):
  """[V, 3, ALBEDO_RANK] albedo basis, albedo units per standard deviation.

  Each component is a smooth scalar field times one colour direction. They
  are deliberately not orthogonalised: Gram-Schmidt would mix the colour
  directions (e.g. "lighter" minus a share of "redder" is a green tint) and
  the skin would stop looking like skin.
  """
  u, v, m = sheet.u, sheet.v, sheet.masks
  skin_rgb = np.asarray(SKIN_RGB)
  skin = np.clip(skin_mask + 0.5 * m["lips"], 0.0, 1.0)
  iris = _iris_mask(u, v) * m["eye_opening"]
  cheeks = _mirror_gauss(u, v, 40.0, -30.0, 16.0, 14.0)
  designed = [  # (field, largest change of a channel at one std)
      (_along(skin_rgb, skin), 0.07),                              # lighter
      (_along(_REDDER, skin), 0.04),                               # redder
      (_along(_YELLOWER, skin), 0.035),                            # yellower
      (_along(-skin_rgb, m["brows"]), 0.06),                       # brows
      (_along([-0.6, -0.2, 0.7], iris), 0.06),                     # eye colour
      (_along(_REDDER, m["lips"]), 0.05),                          # lips
      (_along(_REDDER, cheeks), 0.03),                             # flush
      (_along(skin_rgb, skin * v / 100.0), 0.04),                  # top/bottom
      (_along(-skin_rgb, skin * _gauss(u, v, 0.0, -85.0, 30.0, 25.0)),
       0.04),                                                      # stubble
      (_along(-skin_rgb, _mirror_gauss(u, v, EYE_X, -8.0, 12.0, 4.0)),
       0.035),                                                     # eye bags
      (_along(_REDDER, _gauss(u, v, 0.0, -35.0, 10.0, 10.0)), 0.03),  # nose
      (_along(skin_rgb, skin * _gauss(u, v, 0.0, 55.0, 40.0, 22.0)),
       0.03),                                                      # forehead
      (_along(skin_rgb, skin * u / 70.0), 0.025),                  # left/right
      (_along(_YELLOWER, m["eye_opening"] * (1.0 - iris)), 0.02),  # sclera
  ]

  def centre(r):
    return r.uniform(-70.0, 70.0), r.uniform(-115.0, 90.0)

  def colour(r):
    # Mostly lighter/darker, a little redder/yellower: hue shifts off that
    # plane (green, blue) look unnatural on skin.
    return (r.normal() * skin_rgb + 0.4 * r.normal() * _REDDER +
            0.3 * r.normal() * _YELLOWER)

  num_random = ALBEDO_RANK - len(designed)
  fields = [f for f, _ in designed] + [
      skin[:, None] * _random_bump_field(rng, u, v, colour, centre,
                                         (12.0, 45.0))
      for _ in range(num_random)]
  peaks = ([p for _, p in designed] +
           list(_decaying_std(num_random, 0.025, 10.0, 0.5)))
  return _scale_to_peak(fields, peaks, per_vertex_norm=False)


# ------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------
def _quantise(array, step):
  """float32 `array` rounded to multiples of `step`.

  Last-bit differences between BLAS/libm builds then (almost surely) do not
  reach the stored values, so the model is the same on every machine.
  """
  return (np.round(np.asarray(array, np.float64) / step) *
          step).astype(np.float32)


@functools.lru_cache(maxsize=1)
def embedded_face_model() -> FaceModel:
  """The embedded synthetic face model, built once per process and cached.

  Returns:
    A `FaceModel` named "embedded-synthetic-v1": 11,615 vertices, 22,800
    triangles, the BFM ranks (identity 80, expression 64, albedo 80), the
    68 iBUG landmarks, a skin mask, focal length 1015 px for the 224 crop
    and a default pose that puts the mean face on the 224 alignment
    template. The object is shared, so its arrays are read-only.
  """
  sheet = _Sheet()
  rng = np.random.RandomState(RANDOM_SEED)
  id_basis = _identity_basis(sheet, rng)
  exp_basis = _expression_basis(sheet, rng)
  skin_mask = _skin_mask(sheet.masks)
  albedo_basis = _albedo_basis(sheet, skin_mask, rng)
  landmarks = _landmark_indices(sheet)
  points = sheet.points + EYE_LINE_Y * _Y
  pose = _template_pose(points, landmarks)
  pose[3:] = _quantise(pose[3:], 1e-4)
  model = FaceModel.create(
      mean_shape=_quantise(points, 1e-4),
      id_basis=_quantise(id_basis, 1e-5),
      exp_basis=_quantise(exp_basis, 1e-5),
      mean_albedo=_quantise(_mean_albedo(sheet.u, sheet.v, sheet.masks), 1e-5),
      albedo_basis=_quantise(albedo_basis, 1e-6),
      triangles=sheet.triangles,
      landmark_indices=landmarks,
      skin_mask=_quantise(skin_mask, 1e-5),
      front_mask=np.ones([points.shape[0]], bool),
      default_pose=pose,
      focal_length=FOCAL_LENGTH,
      image_size=IMAGE_SIZE,
      name=MODEL_NAME)
  for field in ("mean_shape", "id_basis", "exp_basis", "mean_albedo",
                "albedo_basis", "triangles", "landmark_indices", "skin_mask",
                "front_mask", "vertex_triangles", "default_pose"):
    getattr(model, field).flags.writeable = False
  return model
