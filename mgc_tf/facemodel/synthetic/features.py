"""Facial features of the synthetic face on frontal coordinates (u, v), mm.

Feature curves (lids, iris, lips, brows), feature heights along the base
normal (nose, eyes, brows, lips, mouth, cheeks), colour-region masks, the
mean albedo and the skin mask.
"""

import numpy as np

from mgc_tf.facemodel.synthetic.params import (ALAR_X, BROW_HALF_LENGTH,
                                               BROW_RGB, BROW_X, BROW_Y,
                                               CANTHAL_TILT, CARUNCLE_RGB,
                                               EYE_HALF_WIDTH, EYE_X,
                                               IRIS_CENTRE_Y, IRIS_RADIUS,
                                               IRIS_RGB, LASH_RGB, LIMBUS_RGB,
                                               LIP_RGB, LOWER_LID_HEIGHT,
                                               LOWER_LIP_THICKNESS,
                                               MOUTH_HALF_WIDTH, MOUTH_LINE_RGB,
                                               MOUTH_Y, NASION_Y, NOSE_TIP_Y,
                                               NOSTRIL_RGB, PUPIL_RADIUS,
                                               PUPIL_RGB, SCLERA_RGB, SKIN_RGB,
                                               SUBNASALE_Y, UPPER_LID_HEIGHT,
                                               UPPER_LIP_THICKNESS)
from mgc_tf.facemodel.synthetic.smooth import (blend, gauss, hermite,
                                               mirror_gauss, smoothstep)


def eye_coords(u):
  """Position s along an eye opening: -1 inner corner, +1 outer corner."""
  return (np.abs(u) - EYE_X) / EYE_HALF_WIDTH


def eyelid_curves(u):
  """(upper, lower) heights of the lid margins above column u, mm.

  The opening is an almond: closed at the corners, the upper lid peaking a
  little medial of the centre, the outer corner higher than the inner one.
  """
  s = eye_coords(u)
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
  upper, lower = eyelid_curves(u)
  margin = np.minimum(upper - v, v - lower)     # mm to the nearer lid margin
  inside_corners = smoothstep(1.0 - np.abs(eye_coords(u)), 0.0, 0.06)
  return smoothstep(margin, -soft, soft) * inside_corners


def _iris_distance(u, v):
  """[V] distance from (u, v) to the nearer iris centre, mm."""
  return np.hypot(np.abs(u) - EYE_X, v - IRIS_CENTRE_Y)


def iris_mask(u, v):
  """[V] in [0, 1]: the irises (where visible, see `_eye_opening`)."""
  return smoothstep(IRIS_RADIUS - _iris_distance(u, v), -0.7, 0.7)


def mouth_line(u):
  """[V] height of the mouth line (where the lips meet) at column u, mm."""
  s = u / MOUTH_HALF_WIDTH
  return MOUTH_Y + 0.6 * s * s


def lip_thickness(u):
  """(upper, lower) vermilion heights above/below the mouth line, mm.

  Both taper to zero at the mouth corners; the upper lip has a Cupid's bow (a
  dip at the centre between two peaks).
  """
  s = u / MOUTH_HALF_WIDTH
  taper = np.clip(1.0 - s * s, 0.0, None)**0.55
  bow = (1.0 - 0.16 * np.exp(-0.5 * (u / 2.5)**2) +
         0.05 * np.exp(-0.5 * ((np.abs(u) - 6.0) / 3.0)**2))
  return UPPER_LIP_THICKNESS * taper * bow, LOWER_LIP_THICKNESS * taper


def brow_centre_line(t):
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
  profile = np.maximum(hermite(
      v, [b - 12, b - 1.5, b, b + 2, t - 3, t, t + 3, t + 8, t + 20, t + 35,
          n - 2, n + 4, n + 14, n + 32],
      [0, 0, 5, 17, 26, 29, 28.5, 23.5, 15, 6.5, 1.5, 0.5, 0, 0]), 0.0)
  # Half width (Gaussian sigma) of the cross-section: narrow bridge, wider
  # root between the eyes and tip lobule.
  width = hermite(v, [b - 12, b, b + 4, t, t + 5, t + 25, n - 3, n + 12],
                  [6, 6, 7, 7.5, 7, 5.8, 8.5, 12])
  dorsum = profile * np.exp(-0.5 * (u / width)**2)
  wings = 8.5 * mirror_gauss(u, v, ALAR_X, b + 5.0, 5.5, 4.2)
  # The alar crease: a groove round the upper and outer edge of each wing.
  ring = np.hypot((np.abs(u) - ALAR_X) / 1.1, v - (b + 5.5))
  crease = (-1.2 * np.exp(-0.5 * ((ring - 6.8) / 1.2)**2) *
            smoothstep(v, b + 1.0, b + 6.0))
  return (np.maximum(dorsum, wings) + 0.15 * np.minimum(dorsum, wings) +
          crease)


def _eye_height(u, v):
  """Eye sockets, eyeballs with corneas, lid margins, lid creases."""
  du = np.abs(u) - EYE_X
  socket = -8.5 * gauss(du, v, 0.0, 2.0, 14.0, 11.0)
  ball = 7.5 * np.clip(1.0 - (du**2 + (v - 0.5)**2) / 16.0**2, 0.0, None)**2
  cornea = 1.2 * np.clip(1.0 - _iris_distance(u, v)**2 / 6.5**2, 0.0, None)**2
  upper, lower = eyelid_curves(u)
  along = smoothstep(1.25 - np.abs(eye_coords(u)), 0.0, 0.4)
  crease = -1.0 * np.exp(-0.5 * ((v - upper - 4.5) / 1.4)**2) * along
  lower_lid = 0.6 * np.exp(-0.5 * ((v - lower + 2.0) / 1.5)**2) * along
  # The opening sits 1.6 mm behind the lid margins: that step is what makes
  # the lids read as lids.
  opening = _eye_opening(u, v)
  return socket + ball + opening * (cornea - 1.6) + crease + lower_lid


def _brow_height(u, v):
  """Glabella and supraorbital ridges."""
  return (4.0 * gauss(u, v, 0.0, 14.0, 12.0, 8.0) +
          3.0 * mirror_gauss(u, v, BROW_X, 17.0, 16.0, 7.0))


def _upper_lip_profile(q):
  """Upper lip height / its peak at q = (v - mouth line) / lip thickness.

  A steep rise out of the mouth line, a rounded vermilion, a small ridge at
  its border (the "white roll"), then the skin of the upper lip.
  """
  return np.maximum(hermite(
      q, [0, 0.1, 0.3, 0.55, 0.85, 1.0, 1.15, 1.6, 2.4],
      [0, 0.55, 0.92, 1.0, 0.8, 0.62, 0.6, 0.25, 0]), 0.0) * (q > 0)


def _lower_lip_profile(q):
  """Lower lip height / its peak at q = (mouth line - v) / lip thickness.

  Fades smoothly into the skin below.
  """
  return np.maximum(hermite(
      q, [0, 0.1, 0.3, 0.5, 0.8, 1.0, 1.3, 1.9],
      [0, 0.5, 0.9, 1.0, 0.8, 0.55, 0.2, 0]), 0.0) * (q > 0)


def lips_height(u, v):
  """Upper and lower lips meeting in a mouth-line groove, dimpled corners."""
  line = mouth_line(u)
  upper, lower = lip_thickness(u)
  s = u / MOUTH_HALF_WIDTH
  taper = np.clip(1.0 - s * s, 0.0, None)**0.5
  upper_lip = 4.6 * taper * _upper_lip_profile(
      (v - line) / np.maximum(upper, 0.05))
  lower_lip = 4.4 * taper * _lower_lip_profile(
      (line - v) / np.maximum(lower, 0.05))
  corners = -1.5 * mirror_gauss(u, v, MOUTH_HALF_WIDTH, MOUTH_Y + 0.5,
                                2.5, 2.5)
  return upper_lip + lower_lip + corners


def _mouth_height(u, v):
  """Dental-arch bulge, lips, philtrum, labiomental fold and chin."""
  arch = 6.0 * gauss(u, v, 0.0, MOUTH_Y + 5.0, 30.0, 20.0)
  philtrum_y = 0.5 * (SUBNASALE_Y + MOUTH_Y + UPPER_LIP_THICKNESS)
  philtrum = (-0.7 * gauss(u, v, 0.0, philtrum_y, 2.2, 3.0) +
              0.5 * mirror_gauss(u, v, 5.0, philtrum_y, 2.0, 3.5))
  labiomental = -3.0 * gauss(u, v, 0.0, -82.0, 14.0, 4.0)
  chin = 7.0 * gauss(u, v, 0.0, -96.0, 18.0, 9.0)
  return arch + lips_height(u, v) + philtrum + labiomental + chin


def _cheek_height(u, v):
  """Cheekbones, cheek fat pads and temple hollows."""
  return (5.0 * mirror_gauss(u, v, 48.0, -18.0, 15.0, 12.0) +
          3.0 * mirror_gauss(u, v, 36.0, -36.0, 13.0, 13.0) -
          3.0 * mirror_gauss(u, v, 60.0, 35.0, 10.0, 14.0))


def feature_heights(u, v):
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
  across = smoothstep(half_thickness - np.abs(v - brow_centre_line(t)),
                      -1.0, 1.0)
  along = smoothstep(t, -0.04, 0.08) * smoothstep(1.0 - t, -0.06, 0.08)
  return across * along


def _lash_mask(u, v):
  """[V] in [0, 1]: a dark band just above the upper lid margins (lashes)."""
  upper, _ = eyelid_curves(u)
  s = eye_coords(u)
  band = (smoothstep(v - upper, -0.3, 0.1) *
          smoothstep(upper + 1.3 - v, -0.2, 0.5))
  # Full strength from the middle to the outer corner, half at the inner one.
  return (band * smoothstep(1.05 - np.abs(s), 0.0, 0.25) *
          (0.5 + 0.5 * smoothstep(s, -0.8, 0.4)))


def _upper_lip_mask(u, v):
  """[V] in [0, 1]: the upper lip vermilion."""
  upper, _ = lip_thickness(u)
  line = mouth_line(u)
  return (smoothstep(v, line - 0.3, line + 0.3) *
          smoothstep(line + upper - v, -0.9, 0.9) * (upper > 0.05))


def _lower_lip_mask(u, v):
  """[V] in [0, 1]: the lower lip vermilion."""
  _, lower = lip_thickness(u)
  line = mouth_line(u)
  return (smoothstep(line - v, -0.3, 0.3) *
          smoothstep(v - (line - lower), -0.9, 0.9) * (lower > 0.05))


def _mouth_line_mask(u, v):
  """[V] in [0, 1]: the dark line where the lips meet."""
  s = u / MOUTH_HALF_WIDTH
  return (np.exp(-0.5 * ((v - mouth_line(u)) / 0.7)**2) *
          smoothstep(1.0 - np.abs(s), 0.0, 0.12))


def _nostril_mask(u, v):
  """[V] in [0, 1]: the nostrils, on the underside of the nose."""
  return np.clip(1.3 * mirror_gauss(u, v, 6.5, SUBNASALE_Y + 1.2, 2.6, 1.2),
                 0.0, 1.0)


def region_masks(u, v):
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
  sclera = blend(np.broadcast_to(SCLERA_RGB, d.shape + (3,)), CARUNCLE_RGB,
                 smoothstep(-eye_coords(u), 0.6, 0.95))
  iris = blend(np.broadcast_to(IRIS_RGB, d.shape + (3,)), LIMBUS_RGB,
               smoothstep(d, IRIS_RADIUS - 1.8, IRIS_RADIUS))
  colour = sclera + (iris - sclera) * iris_mask(u, v)[:, None]
  return blend(colour, PUPIL_RGB, smoothstep(PUPIL_RADIUS - d, -0.4, 0.4))


def build_mean_albedo(u, v, masks):
  """[V, 3] mean albedo, linear RGB in [0, 1]."""
  skin = np.broadcast_to(np.asarray(SKIN_RGB), u.shape + (3,)).copy()
  # Gentle regional tints, as in real faces: rosier cheeks and nose tip, a
  # paler forehead, a darker lower face and shadows under the eyes.
  skin += np.array([0.04, -0.025, -0.015]) * (
      mirror_gauss(u, v, 40.0, -30.0, 14.0, 13.0) +
      0.7 * gauss(u, v, 0.0, NOSE_TIP_Y + 2.0, 9.0, 7.0))[:, None]
  skin += 0.03 * gauss(u, v, 0.0, 50.0, 40.0, 25.0)[:, None]
  skin -= (np.array([0.03, 0.035, 0.03]) *
           gauss(u, v, 0.0, -95.0, 30.0, 22.0)[:, None])
  skin -= (np.array([0.05, 0.06, 0.04]) *
           mirror_gauss(u, v, EYE_X, -7.0, 13.0, 3.5)[:, None])
  colour = blend(skin, BROW_RGB, 0.85 * masks["brows"])
  colour = blend(colour, LIP_RGB, masks["lips"])
  colour = blend(colour, MOUTH_LINE_RGB, masks["mouth_line"])
  colour = blend(colour, NOSTRIL_RGB, masks["nostrils"])
  colour = blend(colour, LASH_RGB, 0.85 * masks["lashes"])
  opening = masks["eye_opening"][:, None]
  colour = colour * (1.0 - opening) + _eye_colour(u, v) * opening
  return np.clip(colour, 0.0, 1.0)


def build_skin_mask(masks):
  """[V] in [0, 1]: 1 on skin; 0 on eyes, brows, lips (like Deep3D's mask)."""
  not_skin = np.maximum.reduce([masks["eye_region"], masks["lashes"],
                                masks["brows"], masks["lips"],
                                masks["mouth_line"], masks["nostrils"]])
  return np.clip(1.0 - not_skin, 0.0, 1.0)
