"""Procedural occluders in front of faces, with a per-pixel alpha.

Real training photos have hands, hair, glasses and microphones in front of
faces; the synthetic multi-view set (and, later, robust self-augmentation)
puts such occluders over its faces with this module. Two steps, so that the
views of one example share one physical occluder set:

1. `sample_occluders(rng)` decides which kinds appear and draws every
   parameter in face-relative units. All randomness happens here.
2. `draw_occluders(occluders, landmarks, S)` rasterises them for one view from
   that view's 68 landmarks: colour [S, S, 3] and alpha [S, S], deterministic.
   `composite` puts them over the image, `occlusion_mask` thresholds alpha.

Face frame, per view: anchors are landmarks or means of landmarks; the unit
is the inter-ocular distance (IOD, between the means of 36-41 and 42-47), or
on a turned face, whose eyes foreshorten, 0.91 x the eye-mouth distance
(IOD / eye-mouth on a frontal face), whichever is larger. `down` points from
the eye midpoint to the mouth centre (mean of 48-67) and `right` is
perpendicular to it: the eye line on a frontal face, still defined in profile.
Angles run from `right` towards `down`, radians. Offsets along `right` shrink
with the face's apparent width (down to half, in profile), sizes do not.

Kinds (`KINDS`), each present independently with `DEFAULT_PROBABILITIES`:
  hand        0.25  palm, four fingers, maybe a thumb and the forearm, in a
                    skin tone from light to dark; enters from below or from a
                    side and covers part of the cheek, mouth or chin.
  hair        0.25  5-14 tapered Bezier strands (black, brown, blond, red,
                    grey) falling from above the brows over the forehead/eyes.
  glasses     0.25  two rims (ellipses to rounded rectangles) around the eyes,
                    along the eye line, a bridge and the temples; clear lenses
                    (alpha <= 0.2) or, one time in four, sunglasses (0.75-0.95).
  microphone  0.12  a mesh ball (grid or dots) near the mouth on a dark handle
                    that comes from below.
  object      0.25  an ellipse, convex polygon or star with a value-noise or
                    striped texture, anywhere over the face.
The clean fraction (no occluder) is prod(1 - p) = 0.75^4 x 0.88 = 0.278:
about 28 % of examples (`clean_fraction`). Layers are drawn hair, glasses,
object, microphone, hand (later on top).

Pixels: OpenCV convention (x = column, y = row, pixel centres at integers).
Edges are anti-aliased: each layer is drawn at 4 x S and averaged down
(INTER_AREA), so alpha is fractional along borders. Occluders may reach past
the crop border (clipped). NumPy and OpenCV only.
"""

import dataclasses
import types
from typing import Any, Callable, List, Mapping, Sequence, Tuple

import cv2
import numpy as np

KINDS = ("hand", "hair", "glasses", "microphone", "object")
DEFAULT_PROBABILITIES = types.MappingProxyType({
    "hand": 0.25, "hair": 0.25, "glasses": 0.25, "microphone": 0.12,
    "object": 0.25})
#: Order of the layers, bottom to top (hair lies on the face, hands in front).
DRAW_ORDER = ("hair", "glasses", "object", "microphone", "hand")
SUPERSAMPLE = 4
_SHIFT = 4  # fixed-point bits of cv2 coordinates: 1/16 supersampled pixel
#: IOD / (eye midpoint to mouth centre) on a frontal face (the embedded
#: model's mean face; the 224 alignment template gives 0.92).
IOD_PER_EYE_MOUTH = 0.91
#: Width of the 68 landmarks along the eye line, in IODs, on a frontal face.
FRONTAL_WIDTH = 2.08
_TEXTURE_SIZE = 96  # side of an object's texture, in texture pixels

#: sRGB skin tones, light to dark; a hand interpolates between neighbours.
SKIN_TONES = ((0.98, 0.85, 0.76), (0.93, 0.76, 0.64), (0.82, 0.62, 0.48),
              (0.66, 0.46, 0.32), (0.47, 0.31, 0.20), (0.30, 0.19, 0.13))
HAIR_COLOURS = ((0.05, 0.04, 0.04), (0.22, 0.13, 0.07), (0.42, 0.27, 0.15),
                (0.86, 0.73, 0.46), (0.60, 0.26, 0.11), (0.70, 0.70, 0.70))
FRAME_COLOURS = ((0.04, 0.04, 0.04), (0.25, 0.15, 0.08), (0.45, 0.28, 0.12),
                 (0.80, 0.66, 0.32), (0.76, 0.76, 0.79), (0.55, 0.08, 0.10),
                 (0.10, 0.15, 0.36))
_EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
_BROWS = tuple(range(17, 27))
_MOUTH = tuple(range(48, 68))


@dataclasses.dataclass(frozen=True)
class Occluder:
  """One occluder, in face-relative units.

  Attributes:
    kind: one of KINDS.
    params: name -> float, int, str or nested tuples of them (so two
      occluders compare with ==). Anchors are tuples of landmark ids (their
      mean), offsets (along right, along down) and sizes in face units,
      angles in radians in the face frame, colours RGB in [0, 1].
  """
  kind: str
  params: Mapping[str, Any]


def clean_fraction(probabilities=DEFAULT_PROBABILITIES) -> float:
  """Probability that `sample_occluders` returns no occluder."""
  return float(np.prod([1.0 - probabilities.get(k, 0.0) for k in KINDS]))


# --- face frame and rasterising ----------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Frame:
  landmarks: np.ndarray  # [68, 2] float64 pixels
  unit: float            # pixels per face unit
  across: float          # pixels per face unit of offsets along `right`
  right: np.ndarray      # [2] unit vector
  down: np.ndarray       # [2] unit vector

  def at(self, anchor, offset=(0.0, 0.0)) -> np.ndarray:
    """[2] pixels: the mean of landmarks `anchor`, moved by `offset` units."""
    return (self.landmarks[list(anchor)].mean(0) +
            offset[0] * self.across * self.right +
            offset[1] * self.unit * self.down)

  def direction(self, angle: float) -> np.ndarray:
    return np.cos(angle) * self.right + np.sin(angle) * self.down


def _face_frame(landmarks) -> _Frame:
  points = np.asarray(landmarks, np.float64)
  if points.shape != (68, 2) or not np.all(np.isfinite(points)):
    raise ValueError("landmarks must be finite [68, 2] pixels; received: "
                     f"shape={points.shape}")
  left, right = points[36:42].mean(0), points[42:48].mean(0)
  down = points[48:68].mean(0) - 0.5 * (left + right)
  iod, eye_mouth = np.linalg.norm(right - left), np.linalg.norm(down)
  unit = max(iod, IOD_PER_EYE_MOUTH * eye_mouth)
  if unit < 1e-3:
    raise ValueError("landmarks collapse to a point; cannot place occluders")
  if eye_mouth < 1e-3 * unit:  # no eye-mouth axis: fall back on the eye line
    down = np.array([-(right - left)[1], (right - left)[0]])
  down = down / np.linalg.norm(down)
  across = np.array([down[1], -down[0]])
  # A turned face looks narrower: sideways offsets shrink with its width.
  width = np.ptp(points @ across) / (FRONTAL_WIDTH * unit)
  return _Frame(points, float(unit), float(unit * np.clip(width, 0.5, 1.0)),
                across, down)


def _rotate(axis, angle):
  """`axis` turned by `angle` (radians) towards its normal (x right, y down)."""
  return np.cos(angle) * axis + np.sin(angle) * np.array([-axis[1], axis[0]])


class _Canvas:
  """Premultiplied colour and alpha at S x S; shapes are drawn at 4 S."""

  def __init__(self, size: int):
    self.size = size
    self.colour = np.zeros([size, size, 3], np.float32)
    self.alpha = np.zeros([size, size], np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    self.pixels = np.stack([xs, ys], -1)  # [S, S, 2] (x, y)

  def coverage(self, *draws: Callable[[np.ndarray], Any]) -> np.ndarray:
    """[S, S] float32 in [0, 1]: area fraction of each pixel the draws cover."""
    big = np.zeros([self.size * SUPERSAMPLE] * 2, np.uint8)
    for draw in draws:
      draw(big)
    return cv2.resize(big, (self.size, self.size),
                      interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

  def add(self, coverage, colour, opacity: float = 1.0) -> None:
    """Puts a layer ([3] or [S, S, 3] colour) over what is there ("over")."""
    a = (coverage * opacity)[..., None]
    self.colour = np.asarray(colour, np.float32) * a + self.colour * (1.0 - a)
    self.alpha = a[..., 0] + self.alpha * (1.0 - a[..., 0])


def _fixed(points) -> np.ndarray:
  """[N, 1, 2] int32 cv2 fixed-point coordinates of S-pixel points at 4 S."""
  big = (np.asarray(points, np.float64).reshape(-1, 2) + 0.5) * SUPERSAMPLE
  return np.round((big - 0.5) * (1 << _SHIFT)).astype(np.int32)[:, None]


def _fill(points):
  return lambda big: cv2.fillPoly(big, [_fixed(points)], 255, cv2.LINE_8,
                                  _SHIFT)


def _stroke(points, width: float, closed: bool = False):
  """Polyline `width` S-pixels wide with round caps and joins."""
  thickness = max(1, int(round(width * SUPERSAMPLE)))
  return lambda big: cv2.polylines(big, [_fixed(points)], closed, 255,
                                   thickness, cv2.LINE_8, _SHIFT)


def _superellipse(centre, axis, half_w, half_h, power=2.0, n=48):
  """[n, 2] outline |x / half_w|^p + |y / half_h|^p = 1, x along `axis`."""
  t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
  x = half_w * np.sign(np.cos(t)) * np.abs(np.cos(t))**(2.0 / power)
  y = half_h * np.sign(np.sin(t)) * np.abs(np.sin(t))**(2.0 / power)
  return centre + x[:, None] * axis + y[:, None] * np.array([-axis[1], axis[0]])


def _bezier(*controls, n=24):
  """[n, 2] points of the cubic Bezier curve through 4 control points."""
  p0, p1, p2, p3 = (np.asarray(c, np.float64) for c in controls)
  t = np.linspace(0.0, 1.0, n)[:, None]
  return ((1 - t)**3 * p0 + 3 * (1 - t)**2 * t * p1 + 3 * (1 - t) * t**2 * p2
          + t**3 * p3)


def smooth_noise(rng: np.random.Generator, size: int,
                 cells: Sequence[int] = (3, 6, 12, 24)) -> np.ndarray:
  """[size, size] float32 multi-octave value noise, stretched to [0, 1]."""
  total = np.zeros([size, size], np.float32)
  for octave, count in enumerate(cells):
    grid = rng.uniform(0.0, 1.0, [count + 1, count + 1]).astype(np.float32)
    total += 0.5**octave * cv2.resize(grid, (size, size),
                                      interpolation=cv2.INTER_CUBIC)
  total -= total.min()
  return total / max(float(total.max()), 1e-6)


# --- the kinds: a sampler (face units, random) and a drawer (pixels) each ----
def _u(rng, low, high) -> float:
  return float(rng.uniform(low, high))


def _pick(rng, options):
  return options[int(rng.integers(len(options)))]


def _jitter(rng, colour, amount) -> Tuple[float, ...]:
  scaled = np.asarray(colour) * rng.uniform(1 - amount, 1 + amount, 3)
  return tuple(float(c) for c in np.clip(scaled, 0.0, 1.0))


def _sample_hand(rng):
  entry = _pick(rng, ("below", "left", "right"))
  if entry == "below":  # fingers up over chin, mouth or cheek
    anchor = _pick(rng, (8, 57, 5, 11, 48, 54))
    angle = -np.pi / 2 + _u(rng, -0.6, 0.6)
  else:  # from a side, pointing across the cheek and slightly up
    anchor, angle = _pick(rng, (3, 4, 5, 48, 31)), _u(rng, -0.8, 0.15)
    if entry == "right":  # the mirror image
      anchor = {3: 13, 4: 12, 5: 11, 48: 54, 31: 35}[anchor]
      angle = np.pi - angle
  tone = _u(rng, 0.0, len(SKIN_TONES) - 1.0)  # between two neighbours
  skin = [np.interp(tone, np.arange(len(SKIN_TONES)), channel)
          for channel in zip(*SKIN_TONES)]
  return {"entry": entry, "anchor": (anchor,), "angle": float(angle),
          "offset": (_u(rng, -0.15, 0.15), _u(rng, -0.15, 0.15)),
          "palm_width": _u(rng, 0.9, 1.2), "finger_length": _u(rng, 0.85, 1.1),
          "spread": _u(rng, 0.0, 0.2), "thumb": bool(rng.uniform() < 0.7),
          "thumb_side": _pick(rng, (-1, 1)), "thumb_angle": _u(rng, 0.4, 1.0),
          "skin": _jitter(rng, skin, 0.04), "shading": _u(rng, 0.1, 0.35),
          "finger_shades": tuple(_u(rng, 0.9, 1.0) for _ in range(4))}


def _draw_hand(canvas, frame, p):
  width = p["palm_width"] * frame.unit
  axis = frame.direction(p["angle"])  # wrist -> fingertips
  side = p["thumb_side"] * np.array([-axis[1], axis[0]])
  knuckles = frame.at(p["anchor"], p["offset"])
  local = lambda a, b: knuckles + width * (a * axis + b * side)  # palm widths
  # Darker towards the wrist, so that the hand does not read as a flat blob.
  along = (canvas.pixels - knuckles.astype(np.float32)) @ axis.astype(
      np.float32) / width
  skin = np.asarray(p["skin"], np.float32) * (
      1.0 - p["shading"] * np.clip(-0.5 * along, 0.0, 1.0))[..., None]
  canvas.add(canvas.coverage(
      _stroke([local(-0.9, 0.0), local(-6.0, 0.0)], 0.85 * width),
      _fill(_superellipse(local(-0.5, 0.0), axis, 0.55 * width, 0.5 * width,
                          3.5))), skin)
  lengths = (0.68, 0.88, 0.95, 0.85)  # little .. index (by the thumb)
  for b, length, shade in zip((-0.36, -0.12, 0.12, 0.36), lengths,
                              p["finger_shades"]):
    tip = _rotate(axis, p["thumb_side"] * p["spread"] * b / 0.24)
    base = local(-0.1, b)
    canvas.add(canvas.coverage(_stroke(
        [base, base + tip * width * length * p["finger_length"]],
        0.23 * width)), skin * shade)
  if p["thumb"]:
    base = local(-0.6, 0.4)
    tip = base + 0.6 * width * _rotate(axis, p["thumb_side"] * p["thumb_angle"])
    canvas.add(canvas.coverage(_stroke([base, tip], 0.27 * width)), skin * 0.96)


def _sample_hair(rng):
  centre, spread = _u(rng, -0.5, 0.5), _u(rng, 0.15, 0.45)
  lean = _u(rng, -0.3, 0.3)  # sideways drift per unit of length
  strands = []  # (4 Bezier controls about the brows, width, brightness)
  for _ in range(int(rng.integers(5, 15))):
    x0, y0 = centre + _u(rng, -spread, spread), _u(rng, -1.2, -0.8)
    length = _u(rng, 1.1, 2.0)
    x3 = x0 + lean * length + _u(rng, -0.15, 0.15)
    strands.append((
        (x0, y0), (x0 + _u(rng, -0.25, 0.25), y0 + length / 3),
        (x3 + _u(rng, -0.25, 0.25), y0 + 2 * length / 3), (x3, y0 + length),
        _u(rng, 0.03, 0.09), _u(rng, 0.85, 1.15)))
  return {"colour": _jitter(rng, _pick(rng, HAIR_COLOURS), 0.08),
          "strands": tuple(strands)}


def _draw_hair(canvas, frame, p):
  for *controls, width, brightness in p["strands"]:
    points = _bezier(*(frame.at(_BROWS, c) for c in controls))
    # Tapered: the root third is widest (chunks share their end points).
    chunks = [_stroke(points[i:i + 9], width * frame.unit * taper)
              for i, taper in ((0, 1.0), (8, 0.8), (16, 0.55))]
    canvas.add(canvas.coverage(*chunks),
               np.clip(np.asarray(p["colour"]) * brightness, 0.0, 1.0))


def _sample_glasses(rng):
  sun = bool(rng.uniform() < 0.25)
  return {"lens_width": _u(rng, 0.75, 0.9), "lens_height": _u(rng, 0.22, 0.32),
          "lens_power": _u(rng, 2.0, 5.0), "lens_drop": _u(rng, 0.0, 0.08),
          "rim": _u(rng, 0.04, 0.1), "bridge_lift": _u(rng, 0.0, 0.12),
          "frame_colour": _jitter(rng, _pick(rng, FRAME_COLOURS), 0.1),
          "sunglasses": sun,
          "lens_opacity": _u(rng, 0.75, 0.95) if sun else _u(rng, 0.0, 0.2),
          "lens_colour": tuple(float(c) for c in rng.uniform(
              *((0.02, 0.2) if sun else (0.6, 1.0)), 3))}


def _draw_glasses(canvas, frame, p):
  points, unit = frame.landmarks, frame.unit
  eyes = [points[list(eye)].mean(0) for eye in _EYES]
  line = eyes[1] - eyes[0]
  # The eye line sets the tilt, unless the eyes nearly coincide (profile).
  axis = (line / np.linalg.norm(line) if np.linalg.norm(line) > 0.25 * unit
          else frame.right)
  up = -np.array([-axis[1], axis[0]])
  # Lens widths follow each eye's own width, so a turned face foreshortens.
  eye_widths = [max(np.linalg.norm(points[a] - points[b]), 0.1 * unit)
                for a, b in ((36, 39), (42, 45))]
  centres = [e - p["lens_drop"] * unit * up for e in eyes]
  half_ws = [p["lens_width"] * w for w in eye_widths]
  outlines = [_superellipse(c, axis, w, p["lens_height"] * unit,
                            p["lens_power"]) for c, w in zip(centres, half_ws)]
  canvas.add(canvas.coverage(*map(_fill, outlines)), p["lens_colour"],
             p["lens_opacity"])
  rim = p["rim"] * unit
  inner = centres[0] + half_ws[0] * axis, centres[1] - half_ws[1] * axis
  lift = 0.5 * (inner[0] + inner[1]) + p["bridge_lift"] * unit * up
  strokes = [_stroke(o, rim, closed=True) for o in outlines]
  strokes.append(_stroke(_bezier(inner[0], lift, lift, inner[1]), rim))
  for centre, w, sign, ear, eye_w in zip(centres, half_ws, (-1, 1), (0, 16),
                                         eye_widths):
    if eye_w >= 0.6 * max(eye_widths):  # a turned head hides its far temple
      strokes.append(_stroke([centre + sign * w * axis,
                              points[ear] + 0.15 * unit * up], 0.8 * rim))
  canvas.add(canvas.coverage(*strokes), p["frame_colour"])


def _sample_microphone(rng):
  return {"offset": (_u(rng, -0.45, 0.45), _u(rng, 0.3, 0.7)),
          "radius": _u(rng, 0.28, 0.42),
          "handle_angle": np.pi / 2 + _u(rng, -0.7, 0.7),
          "handle_width": _u(rng, 0.35, 0.5),
          "handle_colour": _jitter(rng, _pick(rng, ((0.05,) * 3, (0.18,) * 3,
                                                    (0.1, 0.1, 0.25))), 0.2),
          "head_colour": _jitter(rng, (_u(rng, 0.45, 0.8),) * 3, 0.05),
          "mesh": _pick(rng, ("grid", "dots")),
          "mesh_pitch": _u(rng, 0.15, 0.25),  # in head radii
          "mesh_angle": _u(rng, 0.0, np.pi / 2),
          "mesh_dark": _u(rng, 0.35, 0.65)}


def _draw_microphone(canvas, frame, p):
  head, radius = frame.at(_MOUTH, p["offset"]), p["radius"] * frame.unit
  handle = frame.direction(p["handle_angle"])
  canvas.add(canvas.coverage(_stroke([head, head + 6.0 * frame.unit * handle],
                                     2.0 * p["handle_width"] * radius)),
             p["handle_colour"])
  disc = _superellipse(head, frame.right, radius, radius, n=64)
  # Brighter towards the upper left: a ball, not a flat disc.
  light = head - 0.4 * radius * (frame.right + frame.down)
  shade = 1.15 - 0.5 * np.linalg.norm(canvas.pixels - light.astype(np.float32),
                                      axis=-1) / radius
  colour = np.asarray(p["head_colour"], np.float32) * np.clip(
      shade, 0.6, 1.15)[..., None]
  canvas.add(canvas.coverage(_fill(disc)), np.clip(colour, 0.0, 1.0))
  pitch = p["mesh_pitch"] * radius
  axis = _rotate(frame.right, p["mesh_angle"])
  normal = np.array([-axis[1], axis[0]])
  steps = np.arange(-np.ceil(radius / pitch), np.ceil(radius / pitch) + 1)

  def mesh(big):
    if p["mesh"] == "grid":
      for s in steps:
        for a, b in ((axis, normal), (normal, axis)):
          _stroke([head + s * pitch * a - radius * b,
                   head + s * pitch * a + radius * b], 0.3 * pitch)(big)
    else:
      for s in steps:
        for t in steps:
          _fill(_superellipse(head + pitch * (s * axis + t * normal), axis,
                              0.3 * pitch, 0.3 * pitch, n=12))(big)
    inside = np.zeros_like(big)
    _fill(disc)(inside)
    np.minimum(big, inside, out=big)  # the mesh only on the ball

  canvas.add(canvas.coverage(mesh), colour * p["mesh_dark"])


def _sample_object(rng):
  shape = _pick(rng, ("ellipse", "convex", "star"))
  if shape == "ellipse":
    angles, radii = np.linspace(0.0, 2 * np.pi, 40, endpoint=False), np.ones(40)
  elif shape == "convex":
    count = int(rng.integers(5, 10))  # jittered even angles: no slivers
    angles = (np.arange(count) + rng.uniform(-0.3, 0.3, count)) * (
        2 * np.pi / count)
    radii = rng.uniform(0.75, 1.0, count)
  else:
    count = int(rng.integers(5, 9))
    angles = np.linspace(0.0, 2 * np.pi, 2 * count, endpoint=False)
    radii = np.tile([1.0, _u(rng, 0.4, 0.65)], count)
  outline = np.stack([radii * np.cos(angles), radii * np.sin(angles)], -1)
  if shape == "convex":
    outline = cv2.convexHull(outline.astype(np.float32))[:, 0]
  return {"shape": shape, "outline": tuple(map(tuple, outline.tolist())),
          "anchor": (int(rng.integers(68)),),
          "offset": (_u(rng, -0.3, 0.3), _u(rng, -0.3, 0.3)),
          "radius": _u(rng, 0.35, 0.9), "aspect": _u(rng, 0.5, 1.0),
          "angle": _u(rng, 0.0, 2 * np.pi),
          "texture": _pick(rng, ("noise", "stripes")),
          "colours": tuple(tuple(float(c) for c in rng.uniform(0.05, 0.95, 3))
                           for _ in range(3)),
          "texture_seed": int(rng.integers(2**31))}


def _object_texture(p) -> np.ndarray:
  """[T, T, 3] float32 texture in the object's square [-1, 1]^2."""
  rng, size = np.random.default_rng(p["texture_seed"]), _TEXTURE_SIZE
  c = np.asarray(p["colours"], np.float32)
  if p["texture"] == "noise":
    t = smooth_noise(rng, size)[..., None]
    u = smooth_noise(rng, size)[..., None]
    image = (c[0] * (1 - t) + c[1] * t) * (1 - 0.6 * u) + 0.6 * u * c[2]
  else:  # soft stripes at a random angle, frequency and sharpness
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    wave = np.sin(np.pi * rng.uniform(2, 8) * (x * np.cos(angle) +
                                               y * np.sin(angle)) +
                  rng.uniform(0, 2 * np.pi))
    t = (0.5 + 0.5 * np.tanh(rng.uniform(1, 6) * wave))[..., None]
    noise = smooth_noise(rng, size)[..., None] - 0.5
    image = c[0] * (1 - t) + c[1] * t + 0.15 * noise * c[2]
  return np.clip(image, 0.0, 1.0).astype(np.float32)


def _draw_object(canvas, frame, p):
  centre = frame.at(p["anchor"], p["offset"])
  axis = frame.direction(p["angle"])
  normal = np.array([-axis[1], axis[0]])
  r0 = p["radius"] * frame.unit
  r1 = r0 * p["aspect"]
  outline = np.asarray(p["outline"])
  points = centre + outline[:, :1] * r0 * axis + outline[:, 1:] * r1 * normal
  # Texture pixel s maps to local (s + 0.5) * 2 / T - 1, then to the image.
  size = _TEXTURE_SIZE
  matrix = np.stack([axis * r0 * 2 / size, normal * r1 * 2 / size,
                     centre + (axis * r0 + normal * r1) * (1 / size - 1)], -1)
  colour = cv2.warpAffine(_object_texture(p), matrix, (canvas.size,) * 2,
                          flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
  canvas.add(canvas.coverage(_fill(points)), colour)


_KINDS = {"hand": (_sample_hand, _draw_hand),
          "hair": (_sample_hair, _draw_hair),
          "glasses": (_sample_glasses, _draw_glasses),
          "microphone": (_sample_microphone, _draw_microphone),
          "object": (_sample_object, _draw_object)}


# --- public API --------------------------------------------------------------
def sample_occluder(kind: str, rng: np.random.Generator) -> Occluder:
  """One occluder of `kind` (one of KINDS) with random parameters."""
  if kind not in _KINDS:
    raise ValueError(f"kind must be one of {KINDS}; received: kind={kind!r}")
  return Occluder(kind, _KINDS[kind][0](rng))


def sample_occluders(rng: np.random.Generator,
                     probabilities: Mapping[str, float] = DEFAULT_PROBABILITIES
                     ) -> List[Occluder]:
  """A random occluder set, in drawing order (DRAW_ORDER), maybe empty.

  Each kind appears (at most once) with its own probability, independently;
  with DEFAULT_PROBABILITIES 27.8 % of sets are empty (`clean_fraction`).
  Kinds missing from `probabilities` never appear.
  """
  unknown = set(probabilities) - set(KINDS)
  if unknown or not all(0.0 <= v <= 1.0 for v in probabilities.values()):
    raise ValueError("probabilities must map kinds of KINDS to [0, 1]; "
                     f"received: probabilities={dict(probabilities)}")
  return [sample_occluder(kind, rng) for kind in DRAW_ORDER
          if rng.uniform() < probabilities.get(kind, 0.0)]


def draw_occluders(occluders: Sequence[Occluder], landmarks: np.ndarray,
                   image_size: int) -> Tuple[np.ndarray, np.ndarray]:
  """Rasterises occluders over one view (later ones on top).

  Args:
    occluders: from `sample_occluders` / `sample_occluder`.
    landmarks: [68, 2] iBUG landmarks of this view, crop pixels (x, y).
    image_size: side S of the square crop, pixels.

  Returns:
    rgb: [S, S, 3] float32 in [0, 1], the occluders' colour (0 where alpha is
      0; not premultiplied).
    alpha: [S, S] float32 in [0, 1], fractional along edges and for tinted
      lenses, 0 where nothing is drawn.
  """
  size = int(image_size)
  if size < 8:
    raise ValueError(f"image_size must be >= 8; received: {image_size}")
  frame = _face_frame(landmarks)
  canvas = _Canvas(size)
  for occluder in occluders:
    _KINDS[occluder.kind][1](canvas, frame, occluder.params)
  alpha = np.clip(canvas.alpha, 0.0, 1.0)
  rgb = canvas.colour / np.maximum(alpha, 1e-6)[..., None]
  rgb = np.where(alpha[..., None] > 0, np.clip(rgb, 0.0, 1.0), 0.0)
  return rgb.astype(np.float32), alpha.astype(np.float32)


def composite(image: np.ndarray, rgb: np.ndarray,
              alpha: np.ndarray) -> np.ndarray:
  """image * (1 - alpha) + rgb * alpha, in the image's dtype.

  Args:
    image: [S, S, 3] float in [0, 1], or uint8 (then rounded back to uint8).
    rgb, alpha: [S, S, 3] and [S, S] from `draw_occluders`.
  """
  image, alpha = np.asarray(image), np.asarray(alpha, np.float32)[..., None]
  if image.shape[:2] != alpha.shape[:2] or image.shape != np.shape(rgb):
    raise ValueError(f"image {image.shape}, rgb {np.shape(rgb)} and alpha "
                     f"{alpha.shape[:2]} must share their [S, S]")
  if image.dtype == np.uint8:
    out = image.astype(np.float32) / 255.0 * (1.0 - alpha) + rgb * alpha
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
  return (image * (1.0 - alpha) + rgb * alpha).astype(image.dtype)


def occlusion_mask(alpha: np.ndarray, threshold: float = 0.5) -> np.ndarray:
  """[S, S] bool: True where alpha > threshold (occluded pixels)."""
  return np.asarray(alpha) > threshold


def kinds_present(occluders: Sequence[Occluder]) -> Tuple[str, ...]:
  """Names of the kinds in `occluders`, once each, in KINDS order."""
  present = {o.kind for o in occluders}
  return tuple(k for k in KINDS if k in present)


def kind_flags(occluders: Sequence[Occluder]) -> np.ndarray:
  """[len(KINDS)] bool: which kinds occur (a fixed-size dataset feature)."""
  present = set(kinds_present(occluders))
  return np.array([k in present for k in KINDS])


def describe(occluders: Sequence[Occluder]) -> str:
  """"hand, glasses" (drawing order), or "none"."""
  return ", ".join(o.kind for o in occluders) or "none"
