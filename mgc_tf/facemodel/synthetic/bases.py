"""Identity, expression and albedo bases of the synthetic face model.

Hand-designed components then seeded random ones, orthogonalised (identity,
expression) and shrunk where needed so that none folds the mesh over within
FOLD_MARGIN standard deviations (see the package docstring).
"""

import numpy as np

from mgc_tf.facemodel.synthetic.features import (eye_coords, eyelid_curves,
                                                 iris_mask, lips_height,
                                                 mouth_line)
from mgc_tf.facemodel.synthetic.params import (ALBEDO_RANK, AXIS_X, AXIS_Y,
                                               AXIS_Z, BROW_REGIONS, BROW_X,
                                               BROW_Y, EXP_RANK, EYE_REGIONS,
                                               EYE_X, FOLD_MARGIN, ID_RANK,
                                               LOWER_LID_HEIGHT,
                                               MOUTH_HALF_WIDTH, MOUTH_REGION,
                                               MOUTH_Y, NASION_Y, NOSE_TIP_Y,
                                               SKIN_RGB, SUBNASALE_Y,
                                               UPPER_LID_HEIGHT)
from mgc_tf.facemodel.synthetic.smooth import (gauss, mirror_gauss, ramp,
                                               smoothstep, softplus)

# Short names for the tables of components below.
_X, _Y, _Z = AXIS_X, AXIS_Y, AXIS_Z
#: Albedo colour directions (largest channel 1): redder (more blood) and
#: yellower (more carotene and melanin) skin. Both are mild so that their
#: negatives (paler, bluer) still look like skin.
_REDDER = np.array([1.0, -0.3, -0.15])
_YELLOWER = np.array([0.3, 0.1, -1.0])


def _along(direction, weight):
  """[V, 3]: `direction` ((3,) or [V, 3]) times the scalar field `weight`."""
  return np.asarray(direction) * np.asarray(weight)[:, None]


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
                                   gauss(u, v, cu, cv, su, sv))
  return field


def build_identity_basis(sheet, rng):
  """[V, 3, ID_RANK] identity basis, mm per standard deviation."""
  u, v, n, h = sheet.u, sheet.v, sheet.base_normal, sheet.heights
  x = sheet.points[:, 0]
  # Nose length: 0 at the nasion, 1 from the tip to the base, 0 on the lip.
  nose_drop = (np.exp(-0.5 * (u / 14.0)**2) *
               (1.0 - smoothstep(v, NOSE_TIP_Y, NASION_Y)) *
               smoothstep(v, SUBNASALE_Y - 10.0, SUBNASALE_Y))
  eye_spacing = np.sign(u) * mirror_gauss(u, v, EYE_X, 2.0, 14.0, 10.0)
  designed = [
      _along(_X, x),                                          # face width
      _along(_Y, -12.0 * softplus(-v / 12.0)),               # lower face
      _along(n, h["nose"]),                                   # nose size
      _along(_X, x * smoothstep(-v, 30.0, 85.0)),            # jaw width
      _along(n, gauss(u, v, 0.0, -98.0, 20.0, 12.0)),        # chin
      _along(n, mirror_gauss(u, v, 40.0, -38.0, 17.0, 15.0)),  # cheeks
      _along(_Z, -(x / 70.0)**2),                             # roundness
      _along(-_Y, nose_drop),                                 # nose length
      _along(n, h["brows"]),                                  # brow ridge
      _along(_Z, -smoothstep(v, 10.0, 95.0) * (v - 10.0) / 85.0),  # forehead
      _along(_X, u * gauss(u, v, 0.0, -42.0, 16.0, 8.0)),    # nose width
      _along(n, lips_height(u, v)),                          # lip fullness
      _along(_X, eye_spacing),                                # eye spacing
      _along(_X, u * gauss(u, v, 0.0, MOUTH_Y, 30.0, 9.0)),  # mouth width
      _along(n, -mirror_gauss(u, v, EYE_X, 2.0, 16.0, 12.0)),  # eye depth
      _along(n, h["nose"] * smoothstep(v, -34.0, -10.0)),    # nasal bridge
      _along(n, mirror_gauss(u, v, 48.0, -18.0, 15.0, 12.0)),  # cheekbones
      _along(-_Y, smoothstep(-v, 70.0, 105.0)),              # chin height
      _along(_Y, gauss(u, v, 0.0, 8.0, 50.0, 18.0)),         # eye height
      _along(_X, x * smoothstep(v, 15.0, 80.0)),             # forehead width
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
  upper, lower = eyelid_curves(u)
  gap = np.maximum(upper - lower, 1e-3)
  open_fraction = gap / (UPPER_LID_HEIGHT + LOWER_LID_HEIGHT)
  in_opening = np.clip((v - lower) / gap, 0.0, 1.0)
  above = np.clip(v - upper, 0.0, None)
  below = np.clip(lower - v, 0.0, None)
  near_eye = open_fraction * smoothstep(1.4 - np.abs(eye_coords(u)), 0.0, 0.4)
  # Upper lid down: 0 at the lower margin, 1 at the upper one, fading out
  # over 12 mm above it (the skin up to the brow stretches).
  upper_lid = np.where(v > upper, 1.0 - ramp(above - 2.0, 12.0),
                       in_opening) * (v > lower)
  # Lower lid up: 1 at the lower margin, 0 at the upper one, fading out over
  # 10 mm below it (the cheek follows).
  lower_lid = np.where(v < lower, 1.0 - ramp(below - 1.0, 10.0),
                       1.0 - in_opening) * (v < upper)
  return (_along(-_Y, upper_lid * near_eye),
          _along(_Y + 0.15 * AXIS_Z, lower_lid * near_eye))


def build_expression_basis(sheet, rng):
  """[V, 3, EXP_RANK] expression basis, mm per standard deviation."""
  u, v, n = sheet.u, sheet.v, sheet.base_normal
  y, z = sheet.points[:, 1], sheet.points[:, 2]
  mouth = _region_window(u, v, MOUTH_REGION)[:, None]
  eye_l, eye_r = (_region_window(u, v, r)[:, None] for r in EYE_REGIONS)
  brow_l, brow_r = (_region_window(u, v, r)[:, None] for r in BROW_REGIONS)
  image_left = -np.sign(u)[:, None]    # +1 on x < 0, -1 on x > 0
  side, ones = np.sign(u), np.ones_like(u)
  line = mouth_line(u)
  # Weights growing linearly away from the mouth line, so that the lips part
  # or press together without passing through each other.
  below_line = ramp(line - v, 10.0)
  upper_lip = ramp(v - line, 6.0) * (1.0 - ramp(v - line - 8.0, 10.0))
  lower_lip = ramp(line - v, 6.0) * (1.0 - ramp(line - v - 8.0, 10.0))
  lips_centre = gauss(u, v, 0.0, MOUTH_Y, 16.0, 30.0)
  corners = mirror_gauss(u, v, MOUTH_HALF_WIDTH, MOUTH_Y, 9.0, 8.0)

  # Jaw opening: everything below the mouth line rotates about a hinge near
  # the ears (a rotation about +x moves the chin down and back).
  hinge_y, hinge_z = -20.0, -5.0
  jaw = (_along(_Y, -(z - hinge_z) * below_line) +
         _along(_Z, (y - hinge_y) * below_line))
  smile = (_along(np.stack([0.6 * side, ones, -0.6 * ones], -1), corners) +
           _along(_Y + 0.5 * AXIS_Z,
                  0.5 * mirror_gauss(u, v, 36.0, -42.0, 12.0, 10.0)))
  blink, squint = _eyelid_fields(u, v)
  brows_up = _along(_Y + 0.15 * AXIS_Z,
                    mirror_gauss(u, v, BROW_X, BROW_Y, 22.0, 8.0))
  inner_brows = mirror_gauss(u, v, 14.0, BROW_Y - 2.0, 9.0, 7.0)
  outer_brows = mirror_gauss(u, v, 46.0, BROW_Y, 9.0, 7.0)
  frown = _along(np.stack([-0.8 * side, -0.7 * ones, 0.3 * ones], -1),
                 inner_brows)
  pucker = _along(np.stack([-u / 20.0, 0 * u, ones], -1),
                  gauss(u, v, 0.0, MOUTH_Y, 18.0, 9.0))
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
      mouth * _along(_Y + 0.4 * AXIS_Z, lips_centre * upper_lip),    # lip up
      mouth * _along(-_Y + 0.3 * AXIS_Z, lips_centre * lower_lip),   # lip down
      brows * frown,                                             # frown
      wink * blink,                                              # wink
      mouth * smile * image_left,                                # half smile
      one_brow * brows_up,                                       # one brow up
      mouth * _along(_X, gauss(u, v, 0.0, MOUTH_Y, 24.0, 12.0)),  # mouth side
      mouth * _along(-n, lips_height(u, v)),                    # lips pressed
      mouth * _along(n, mirror_gauss(u, v, 36.0, -58.0, 13.0, 13.0)),  # puff
      mouth * _along(_Y + _Z, gauss(u, v, 0.0, -95.0, 16.0, 10.0)),  # chin up
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


def build_albedo_basis(sheet, skin_mask, rng):
  """[V, 3, ALBEDO_RANK] albedo basis, albedo units per standard deviation.

  Each component is a smooth scalar field times one colour direction. They
  are deliberately not orthogonalised: Gram-Schmidt would mix the colour
  directions (e.g. "lighter" minus a share of "redder" is a green tint) and
  the skin would stop looking like skin.
  """
  u, v, m = sheet.u, sheet.v, sheet.masks
  skin_rgb = np.asarray(SKIN_RGB)
  skin = np.clip(skin_mask + 0.5 * m["lips"], 0.0, 1.0)
  iris = iris_mask(u, v) * m["eye_opening"]
  cheeks = mirror_gauss(u, v, 40.0, -30.0, 16.0, 14.0)
  designed = [  # (field, largest change of a channel at one std)
      (_along(skin_rgb, skin), 0.07),                              # lighter
      (_along(_REDDER, skin), 0.04),                               # redder
      (_along(_YELLOWER, skin), 0.035),                            # yellower
      (_along(-skin_rgb, m["brows"]), 0.06),                       # brows
      (_along([-0.6, -0.2, 0.7], iris), 0.06),                     # eye colour
      (_along(_REDDER, m["lips"]), 0.05),                          # lips
      (_along(_REDDER, cheeks), 0.03),                             # flush
      (_along(skin_rgb, skin * v / 100.0), 0.04),                  # top/bottom
      (_along(-skin_rgb, skin * gauss(u, v, 0.0, -85.0, 30.0, 25.0)),
       0.04),                                                      # stubble
      (_along(-skin_rgb, mirror_gauss(u, v, EYE_X, -8.0, 12.0, 4.0)),
       0.035),                                                     # eye bags
      (_along(_REDDER, gauss(u, v, 0.0, -35.0, 10.0, 10.0)), 0.03),  # nose
      (_along(skin_rgb, skin * gauss(u, v, 0.0, 55.0, 40.0, 22.0)),
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
