"""Synthetic multi-view face scenes: sampling and rendering of one example.

Each example shows one synthetic person at one instant from NUM_VIEWS = 3
cameras: the same identity, expression and albedo in every view, the same
light (fixed to the head), and a different head pose and camera jitter per
view. View TARGET_VIEW = 1 (the middle one) is the target of MGCNet's
multi-view losses, views 0 and 2 are its sources.

Sampling (all ranges are module constants, documented in
docs/datasets/synthetic_multiview.md):
  * identity, expression, albedo ~ N(0, sigma) in units of one standard
    deviation (ID_SIGMA, EXP_SIGMA, ALBEDO_SIGMA), clipped to
    +/-COEFFICIENT_CLIP; a shape whose mesh folds over (a triangle whose
    normal turns against the mean face's) is drawn again.
  * target yaw: uniform in [-90, 90] degrees for "train"; for "test" the
    index cycles through the |yaw| bins [0, 30), [30, 60), [60, 90] with a
    random sign, so the bins hold equal counts. Source yaws are the target's
    minus / plus an offset uniform in SOURCE_OFFSET_DEGREES; an offset that
    would pass +/-90 is applied on the other side of the target instead, so
    every source keeps its full offset (a clipped source could coincide with
    the target).
  * head pitch and roll small, plus per-view jitter; the translation puts a
    fixed point of the face (the centroid of the mean face's landmarks) where
    the default pose puts it, plus a small per-view shift and depth change,
    and is drawn again until all 68 landmarks lie in the crop.
  * lighting: ambient plus a key and a weaker fill light (clamped-cosine
    lobes with colour tints) defined in the HEAD frame and projected onto the
    9 SH bands. Shading uses camera-space normals, so each view stores that
    same light rotated into its own camera frame: the vertex colours are then
    identical in the three views, as they must be at one instant.
  * backgrounds: random crops, flips and colour shifts of photographs that
    ship inside the scikit-image wheel, or procedural textures (value noise,
    gradients, stripes); the three views see different crops of one scene.

Everything is drawn from a generator seeded by (DATASET_SEED, split, index),
so an example's scene does not depend on the image size (only its
resolution does), on the number of examples or on which other examples
share its render batch; rendering uses a fixed batch of EXAMPLES_PER_BATCH
examples (padded at the end) so that the float results are identical
however the examples are grouped.

Ground truth is consistent with `FaceDecoder(face_model).decode(
coefficients, image_size)`: decoding an example's stored coefficients gives
its stored landmarks, pose and (rendered) image and depth.
"""

import dataclasses
import functools
import importlib.resources
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from mgc_tf.data import beam_build
from mgc_tf.data import features as features_lib
from mgc_tf.data import occluders as occluders_lib
from mgc_tf.evaluation import metrics
from mgc_tf.facemodel import coefficients as coefficients_lib
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import expressions
from mgc_tf.facemodel import mesh
from mgc_tf.facemodel import shading
from mgc_tf.facemodel import synthetic
from mgc_tf.faces2d import skin as skin_lib
from mgc_tf.render import rasterizer

NUM_VIEWS = 3
TARGET_VIEW = 1

#: Root seed of the dataset; change it (and the builder's version) to draw a
#: different dataset.
DATASET_SEED = 20200823
#: Split name -> stream id mixed into each example's seed.
SPLIT_STREAMS = {"train": 0, "test": 1}
#: Mixed into the seed of a person seen in several examples (configs with
#: examples_per_identity > 1), after the split's stream.
PERSON_STREAM = 7

# --- Coefficients, in standard deviations ------------------------------------
ID_SIGMA = 1.0
EXP_SIGMA = 0.6
#: A blendshape model's expression (ICT-FaceKit's ARKit shapes): 0 to this
#: many shapes at weights uniform in BLENDSHAPE_WEIGHTS, the others 0.
MAX_BLENDSHAPES = 3
BLENDSHAPE_WEIGHTS = (0.3, 0.8)
ALBEDO_SIGMA = 0.8
COEFFICIENT_CLIP = 2.5
#: Shape draws before giving up on an unfolded mesh (~2 % of draws fold).
MAX_SHAPE_DRAWS = 20

# --- Pose ---------------------------------------------------------------------
MAX_YAW_DEGREES = 90.0
#: |yaw| bins of the test split, degrees; the last one includes 90. They are
#: the evaluation's bins, so that the test split is balanced over them.
YAW_BINS_DEGREES = metrics.YAW_BINS
#: |source yaw - target yaw|, degrees, uniform in this range.
SOURCE_OFFSET_DEGREES = (10.0, 40.0)
#: Head pitch and roll (shared by the views), uniform in +/- these, degrees.
HEAD_PITCH_DEGREES = 10.0
HEAD_ROLL_DEGREES = 8.0
#: Per-view pitch and roll jitter on top, uniform in +/- this, degrees.
VIEW_ANGLE_JITTER_DEGREES = 3.0
#: Per-view shift of the face across the image (x, y), uniform in +/- mm.
TRANSLATION_JITTER_MM = 8.0
#: Per-view change of the camera distance, uniform in +/- this fraction.
DEPTH_JITTER_FRACTION = 0.06
#: Landmarks stay this fraction of the crop away from its border.
CROP_MARGIN_FRACTION = 0.03
MAX_POSE_DRAWS = 20

# --- Lighting (irradiance multiplies the albedo) ------------------------------
AMBIENT_RANGE = (0.30, 0.65)
KEY_LIGHT_RANGE = (0.25, 0.75)
FILL_LIGHT_RANGE = (0.0, 0.25)
#: Key light direction in the head frame: azimuth about the head's vertical
#: axis from straight ahead, elevation above the horizontal, degrees.
KEY_AZIMUTH_DEGREES = 75.0
KEY_ELEVATION_DEGREES = (-20.0, 50.0)
LIGHT_TINT = 0.12
AMBIENT_TINT = 0.05

# --- Backgrounds --------------------------------------------------------------
#: Photographs used as backgrounds: files inside the scikit-image wheel
#: (package `skimage.data`; nothing is downloaded). Left out on purpose:
#: astronaut.png and camera.png (they show human faces) and the microscopy,
#: medical and test-chart images.
BACKGROUND_PHOTOS = ("coffee.png", "chelsea.png", "rocket.jpg",
                     "hubble_deep_field.jpg", "motorcycle_left.png",
                     "brick.png", "grass.png", "gravel.png", "page.png",
                     "text.png", "moon.png", "horse.png", "coins.png",
                     "clock_motion.png")
PHOTO_PROBABILITY = 0.6
PROCEDURAL_KINDS = ("noise", "gradient", "stripes")
#: Side of the procedural canvas, pixels (views crop and resize it).
PROCEDURAL_CANVAS = 256
#: Crop side as a fraction of the source's shorter side.
CROP_FRACTION = (0.35, 0.9)

#: Examples rendered per call of the compiled render function (x NUM_VIEWS
#: images); fixed so results do not depend on how examples are grouped.
EXAMPLES_PER_BATCH = 4



@dataclasses.dataclass(frozen=True)
class SceneRecipe:
  """What a version of the dataset draws and how hard its scenes are.

  Version 1.0.0 (`RECIPE_V1`, the module constants above) renders clean
  faces with exact landmarks. Version 2.0.0 (`RECIPE_V2`) makes the
  conditions of real training data: a wider expression range, pitch as well
  as yaw, stronger coloured light, mostly photographic backgrounds,
  occluders in front of the faces, landmarks as a detector gives them and a
  colour-model skin map (docs/datasets/synthetic_multiview.md).

  Attributes:
    name: "v1" or "v2".
    exp_sigma: expression coefficients' standard deviation (in units of one
      model standard deviation), for a PCA expression model.
    max_blendshapes: for a blendshape expression model, the most shapes one
      expression uses (`sample_shape`).
    head_pitch_degrees, head_roll_degrees: head pitch / roll shared by the
      views, uniform in +/- these.
    ambient_range, key_light_range, fill_light_range: light strengths.
    key_azimuth_degrees: key light azimuth, uniform in +/- this.
    light_tint, ambient_tint: per-channel colour spread of the lights.
    photo_probability: chance of a photographic background.
    occluders: put occluders (`mgc_tf.data.occluders`) in front of faces,
      store their masks, and store the colour model's skin map
      (`mgc_tf.faces2d.skin`) of the final image, as for real photos,
      instead of the rendered skin region (`occlude_views`).
    detected_landmarks: store landmarks as a detector gives them (and the
      exact ones under `landmarks_true`).
  """
  name: str = "v1"
  exp_sigma: float = EXP_SIGMA
  max_blendshapes: int = MAX_BLENDSHAPES
  head_pitch_degrees: float = HEAD_PITCH_DEGREES
  head_roll_degrees: float = HEAD_ROLL_DEGREES
  ambient_range: Tuple[float, float] = AMBIENT_RANGE
  key_light_range: Tuple[float, float] = KEY_LIGHT_RANGE
  fill_light_range: Tuple[float, float] = FILL_LIGHT_RANGE
  key_azimuth_degrees: float = KEY_AZIMUTH_DEGREES
  light_tint: float = LIGHT_TINT
  ambient_tint: float = AMBIENT_TINT
  photo_probability: float = PHOTO_PROBABILITY
  occluders: bool = False
  detected_landmarks: bool = False


RECIPE_V1 = SceneRecipe()
RECIPE_V2 = SceneRecipe(
    name="v2", exp_sigma=1.0, max_blendshapes=5, head_pitch_degrees=25.0, head_roll_degrees=12.0,
    ambient_range=(0.15, 0.55), key_light_range=(0.4, 1.0),
    fill_light_range=(0.0, 0.3), key_azimuth_degrees=90.0, light_tint=0.35,
    ambient_tint=0.15, photo_probability=0.85, occluders=True,
    detected_landmarks=True)
RECIPES = {recipe.name: recipe for recipe in (RECIPE_V1, RECIPE_V2)}

# --- Feature keys added to the core multi-view keys ---------------------------
COEFFICIENTS_KEY = "coefficients"
POSE_KEY = "pose"
YAW_KEY = "yaw_degrees"
DEPTH_KEY = "depth"
# Version 2.0.0 only:
TRUE_LANDMARKS_KEY = "landmarks_true"
LANDMARK_STATUS_KEY = "landmark_status"
OCCLUSION_KEY = "occlusion"
FACE_MASK_KEY = "face_mask"
OCCLUDED_FRACTION_KEY = "occluded_fraction"
OCCLUDERS_KEY = "occluders"


@dataclasses.dataclass(frozen=True)
class Scene:
  """The sampled parameters of one example (before rendering).

  Attributes:
    split: "train" or "test".
    index: example index within the split.
    coefficients: [NUM_VIEWS, K] float32 full coefficient vectors in the
      face model's layout (pose = offset from the default pose); decoding
      them renders the views.
    pose: [NUM_VIEWS, 6] float32 absolute pose (rz, ry, rx) rad, (tx, ty, tz)
      mm = default pose + the pose offsets in `coefficients`.
    yaw_degrees: [NUM_VIEWS] float32 head yaw seen by each camera, degrees:
      the absolute ry, positive when the nose turns towards the image's right
      (the person turns to their own left).
    backgrounds: [NUM_VIEWS, S, S, 3] float32 in [0, 1].
    recipe: the `SceneRecipe` it was drawn with.
    occluders: the occluders in front of the face (`mgc_tf.data.occluders`;
      one set for all views, drawn in each view relative to its landmarks);
      empty in v1 and for clean v2 scenes.
  """
  split: str
  index: int
  coefficients: np.ndarray
  pose: np.ndarray
  yaw_degrees: np.ndarray
  backgrounds: np.ndarray
  recipe: "SceneRecipe" = None
  occluders: tuple = ()
  examples_per_identity: int = 1

  @property
  def identity(self) -> str:
    return identity_name(self.split, self.index, self.examples_per_identity)


def identity_name(split: str, index: int,
                  examples_per_identity: int = 1) -> str:
  """The identity label of example `index` of `split`: one person each, or
  with examples_per_identity = k, person index // k."""
  if examples_per_identity > 1:
    return f"synthetic-{split}-person{index // examples_per_identity:06d}"
  return f"synthetic-{split}-{index:06d}"


def person_rng(split: str, person: int) -> np.random.Generator:
  """The generator of one person's identity and albedo (configs with several
  examples per identity); independent of every example's generator."""
  if split not in SPLIT_STREAMS:
    raise ValueError(f"Unknown split {split!r}; expected one of "
                     f"{sorted(SPLIT_STREAMS)}")
  return np.random.default_rng(
      [DATASET_SEED, SPLIT_STREAMS[split], PERSON_STREAM, person])


def sample_person(face_model, split: str, person: int
                  ) -> Tuple[np.ndarray, np.ndarray]:
  """Identity [K_id] and albedo [K_alb] coefficients of one person whose
  neutral face does not fold (redrawn from the person's stream until so)."""
  rng = person_rng(split, person)
  for _ in range(MAX_SHAPE_DRAWS):
    id_coeffs = np.clip(ID_SIGMA * rng.standard_normal(face_model.id_rank),
                        -COEFFICIENT_CLIP, COEFFICIENT_CLIP)
    albedo = np.clip(ALBEDO_SIGMA *
                     rng.standard_normal(face_model.albedo_rank),
                     -COEFFICIENT_CLIP, COEFFICIENT_CLIP)
    neutral = shape_of(face_model, id_coeffs, np.zeros(face_model.exp_rank))
    if folded_triangles(face_model, neutral) == 0:
      return id_coeffs, albedo
  return np.zeros(face_model.id_rank), albedo


def example_rng(split: str, index: int) -> np.random.Generator:
  """The generator every random choice of one example comes from."""
  if split not in SPLIT_STREAMS:
    raise ValueError(f"Unknown split {split!r}; expected one of "
                     f"{sorted(SPLIT_STREAMS)}")
  if index < 0:
    raise ValueError(f"index must be >= 0. Received: index={index}")
  return np.random.default_rng([DATASET_SEED, SPLIT_STREAMS[split], index])


def yaw_bin(yaw_degrees) -> np.ndarray:
  """Index into YAW_BINS_DEGREES of |yaw| (90 falls in the last bin)."""
  return metrics.yaw_bin_index(yaw_degrees)


# --- Pose ---------------------------------------------------------------------
def sample_view_yaws(rng: np.random.Generator, split: str,
                     index: int) -> np.ndarray:
  """[NUM_VIEWS] yaw angles in degrees: source, target, source."""
  if split == "test":
    low, high = YAW_BINS_DEGREES[index % len(YAW_BINS_DEGREES)]
    target = rng.uniform(low, high) * rng.choice([-1.0, 1.0])
  else:
    target = rng.uniform(-MAX_YAW_DEGREES, MAX_YAW_DEGREES)
  offsets = rng.uniform(*SOURCE_OFFSET_DEGREES, size=2)
  yaws = [target - offsets[0], target, target + offsets[1]]
  for view in (0, 2):
    if abs(yaws[view]) > MAX_YAW_DEGREES:
      # Mirror the offset about the target so it keeps its size.
      yaws[view] = 2.0 * target - yaws[view]
  return np.array(yaws, np.float64)


def euler_to_rotation_np(angles: np.ndarray) -> np.ndarray:
  """[..., 3] (rz, ry, rx) radians -> [..., 3, 3] R = Rx Ry Rz (NumPy).

  Same convention as `mgc_tf.geometry.euler_to_rotation`; the tests check
  they agree.
  """
  angles = np.asarray(angles, np.float64)
  cz, sz = np.cos(angles[..., 0]), np.sin(angles[..., 0])
  cy, sy = np.cos(angles[..., 1]), np.sin(angles[..., 1])
  cx, sx = np.cos(angles[..., 2]), np.sin(angles[..., 2])
  one, zero = np.ones_like(cz), np.zeros_like(cz)
  rz = np.stack([np.stack([cz, -sz, zero], -1), np.stack([sz, cz, zero], -1),
                 np.stack([zero, zero, one], -1)], -2)
  ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1),
                 np.stack([-sy, zero, cy], -1)], -2)
  rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cx, -sx], -1),
                 np.stack([zero, sx, cx], -1)], -2)
  return rx @ ry @ rz


def _landmarks_in_crop(landmarks_model: np.ndarray, rotation: np.ndarray,
                       translation: np.ndarray, face_model) -> bool:
  """True when all landmarks project inside the crop with a margin.

  Works in crop fractions (focal length / crop size is size independent).
  """
  camera = landmarks_model @ rotation.T + translation
  if np.any(camera[:, 2] <= 0.0):
    return False
  fraction = (face_model.focal_length / face_model.image_size *
              camera[:, :2] / camera[:, 2:3] + 0.5)
  return bool(np.all((fraction > CROP_MARGIN_FRACTION) &
                     (fraction < 1.0 - CROP_MARGIN_FRACTION)))


def sample_poses(rng: np.random.Generator, face_model, yaws_degrees,
                 landmarks_model: np.ndarray,
                 recipe: SceneRecipe = RECIPE_V1) -> np.ndarray:
  """[NUM_VIEWS, 6] absolute poses for the given yaws.

  Args:
    rng: the example's generator.
    face_model: gives the default pose and the camera.
    yaws_degrees: [NUM_VIEWS] yaw per view, degrees.
    landmarks_model: [68, 3] model-space landmarks of the sampled shape, mm
      (kept inside the crop).
    recipe: gives the head pitch and roll ranges.
  """
  default = np.asarray(face_model.default_pose, np.float64)
  default_rotation = euler_to_rotation_np(default[:3])
  # The face point that stays put: where the default pose shows the mean
  # face's landmark centroid (the centre of the aligned crop, roughly).
  anchor = np.asarray(face_model.mean_shape, np.float64)[
      face_model.landmark_indices].mean(0)
  anchor_camera = default_rotation @ anchor + default[3:]
  head_pitch = rng.uniform(-recipe.head_pitch_degrees,
                           recipe.head_pitch_degrees)
  head_roll = rng.uniform(-recipe.head_roll_degrees, recipe.head_roll_degrees)
  poses = np.zeros([len(yaws_degrees), 6])
  for view, yaw in enumerate(yaws_degrees):
    for attempt in range(MAX_POSE_DRAWS + 1):
      # The last attempt drops the jitter (the unjittered pose is checked by
      # the tests to keep every landmark in the crop).
      jitter = 0.0 if attempt == MAX_POSE_DRAWS else 1.0
      pitch = head_pitch + jitter * rng.uniform(-VIEW_ANGLE_JITTER_DEGREES,
                                                VIEW_ANGLE_JITTER_DEGREES)
      roll = head_roll + jitter * rng.uniform(-VIEW_ANGLE_JITTER_DEGREES,
                                              VIEW_ANGLE_JITTER_DEGREES)
      angles = default[:3] + np.deg2rad([roll, yaw, pitch])
      rotation = euler_to_rotation_np(angles)
      shift = jitter * rng.uniform(-TRANSLATION_JITTER_MM,
                                   TRANSLATION_JITTER_MM, size=2)
      depth_scale = 1.0 + jitter * rng.uniform(-DEPTH_JITTER_FRACTION,
                                               DEPTH_JITTER_FRACTION)
      target = np.array([anchor_camera[0] + shift[0],
                         anchor_camera[1] + shift[1],
                         anchor_camera[2] * depth_scale])
      translation = target - rotation @ anchor
      if _landmarks_in_crop(landmarks_model, rotation, translation,
                            face_model):
        break
    poses[view, :3] = angles
    poses[view, 3:] = translation
  return poses


# --- Shape, albedo ------------------------------------------------------------
@beam_build.once_per_process
def _mean_face_normals(face_model) -> np.ndarray:
  return mesh.face_normals(face_model.mean_shape, face_model.triangles)


def shape_of(face_model, id_coeffs: np.ndarray,
             exp_coeffs: np.ndarray) -> np.ndarray:
  """[V, 3] float32 model-space shape, mm (float32 maths, like the decoder)."""
  def combine(basis, coeffs):
    return np.tensordot(basis, np.asarray(coeffs, np.float32), axes=([2], [0]))
  return (face_model.mean_shape + combine(face_model.id_basis, id_coeffs) +
          combine(face_model.exp_basis, exp_coeffs))


def folded_triangles(face_model, shape: np.ndarray) -> int:
  """Number of triangles of `shape` [V, 3] whose normal turns against the
  mean face's."""
  normals = mesh.face_normals(shape, face_model.triangles)
  return int(np.sum(np.sum(normals * _mean_face_normals(face_model), -1) <= 0))


def sample_shape(rng: np.random.Generator, face_model,
                 exp_sigma: float = EXP_SIGMA,
                 max_blendshapes: int = MAX_BLENDSHAPES
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Identity [K_id] and expression [K_exp] coefficients of an unfolded mesh,
  and the mesh [V, 3].

  PCA expressions are N(0, exp_sigma^2) per mode; blendshape weights
  (`face_model.is_blendshape`) are 0 to `max_blendshapes` random shapes at
  weights uniform in BLENDSHAPE_WEIGHTS (`expressions.
  random_blendshape_weights`), so a neutral face is among them.
  """
  for _ in range(MAX_SHAPE_DRAWS):
    id_coeffs = np.clip(ID_SIGMA * rng.standard_normal(face_model.id_rank),
                        -COEFFICIENT_CLIP, COEFFICIENT_CLIP)
    if face_model.is_blendshape:
      exp_coeffs = expressions.random_blendshape_weights(
          rng, face_model.exp_rank, rng.integers(0, max_blendshapes + 1),
          *BLENDSHAPE_WEIGHTS)
    else:
      exp_coeffs = np.clip(
          exp_sigma * rng.standard_normal(face_model.exp_rank),
          -COEFFICIENT_CLIP, COEFFICIENT_CLIP)
    shape = shape_of(face_model, id_coeffs, exp_coeffs)
    if folded_triangles(face_model, shape) == 0:
      return id_coeffs, exp_coeffs, shape
  # Unreachable in practice (~2 % of draws fold, so 20 in a row ~ 1e-35);
  # the mean face cannot fold.
  id_coeffs = np.zeros(face_model.id_rank)
  exp_coeffs = np.zeros(face_model.exp_rank)
  return id_coeffs, exp_coeffs, shape_of(face_model, id_coeffs, exp_coeffs)


# --- Lighting -----------------------------------------------------------------
@beam_build.once_per_process
def _sphere_directions(count: int = 256) -> np.ndarray:
  """[count, 3] near-uniform unit vectors (Fibonacci sphere)."""
  k = np.arange(count) + 0.5
  z = 1.0 - 2.0 * k / count
  phi = np.pi * (1.0 + 5.0**0.5) * k
  r = np.sqrt(1.0 - z * z)
  return np.stack([r * np.cos(phi), r * np.sin(phi), z], -1)


def _sh_basis_np(normals: np.ndarray) -> np.ndarray:
  """[N, 3] -> [N, 9] the renderer's SH irradiance basis, in float64."""
  return shading.sh_basis(np.asarray(normals, np.float64)).numpy()


@beam_build.once_per_process
def _sphere_sh_basis() -> np.ndarray:
  """[N, 9] SH basis at `_sphere_directions()`."""
  return _sh_basis_np(_sphere_directions())


def _direction(azimuth_degrees: float, elevation_degrees: float) -> np.ndarray:
  """Head-frame unit vector: azimuth about +y from +z (out of the face)."""
  azimuth, elevation = np.deg2rad([azimuth_degrees, elevation_degrees])
  return np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                   np.cos(elevation) * np.cos(azimuth)])


def sample_head_lighting(rng: np.random.Generator,
                         recipe: SceneRecipe = RECIPE_V1) -> np.ndarray:
  """[3, 9] SH coefficients (0.8 ambient offset INCLUDED) of a random light.

  The light is ambient plus a key and a fill light, each a clamped cosine
  max(0, n . d) with a colour; the coefficients are its least-squares
  projection onto the 9 bands over the sphere of head-frame normals n.
  """
  ambient = rng.uniform(*recipe.ambient_range) * (
      1.0 + rng.uniform(-recipe.ambient_tint, recipe.ambient_tint, 3))
  key_direction = _direction(
      rng.uniform(-recipe.key_azimuth_degrees, recipe.key_azimuth_degrees),
      rng.uniform(*KEY_ELEVATION_DEGREES))
  key = rng.uniform(*recipe.key_light_range) * (
      1.0 + rng.uniform(-recipe.light_tint, recipe.light_tint, 3))
  # The fill light comes from the other side, lower and weaker.
  fill_side = -1.0 if key_direction[0] > 0.0 else 1.0
  fill_direction = _direction(fill_side * rng.uniform(30.0, 90.0),
                              rng.uniform(-30.0, 20.0))
  fill = rng.uniform(*recipe.fill_light_range) * (
      1.0 + rng.uniform(-recipe.light_tint, recipe.light_tint, 3))
  normals = _sphere_directions()
  irradiance = (ambient[None, :] +
                np.maximum(normals @ key_direction, 0.0)[:, None] * key +
                np.maximum(normals @ fill_direction, 0.0)[:, None] * fill)
  gamma, *_ = np.linalg.lstsq(_sphere_sh_basis(), irradiance, rcond=None)
  return gamma.T


def lighting_for_view(head_lighting: np.ndarray, rotation: np.ndarray
                      ) -> np.ndarray:
  """[27] lighting coefficients of one camera for a head-frame light.

  With camera normals n_c = R n, the view's coefficients g_c satisfy
  Y(R n) . g_c = Y(n) . g_head for every n. Both sides are polynomials of
  degree <= 2 in n, so the least-squares solution over enough directions is
  exact (rotations mix SH bands only within each order).

  Args:
    head_lighting: [3, 9] head-frame coefficients, 0.8 offset included.
    rotation: [3, 3] model -> camera rotation of the view.

  Returns:
    [27] channel-major coefficients as the decoder reads them (0.8 offset
    removed again).
  """
  target = _sphere_sh_basis() @ head_lighting.T  # [N, 3]
  basis = _sh_basis_np(_sphere_directions() @ rotation.T)
  gamma, *_ = np.linalg.lstsq(basis, target, rcond=None)  # [9, 3]
  gamma = gamma.T.copy()
  gamma[:, 0] -= shading.AMBIENT_OFFSET
  return gamma.reshape([-1])


# --- Backgrounds --------------------------------------------------------------
@beam_build.once_per_process
def background_photos() -> Dict[str, np.ndarray]:
  """File name -> [H, W, 3] float32 photograph in [0, 1] (BACKGROUND_PHOTOS).

  Raises:
    ImportError: scikit-image is missing, or its wheel lacks one of the files
      (its photographs are part of the dataset's definition, so there is no
      silent fallback).
  """
  install = "pip install 'scikit-image>=0.22'"
  try:
    folder = importlib.resources.files("skimage.data")
  except ModuleNotFoundError as error:
    raise ImportError(
        "The synthetic multi-view dataset uses the photographs bundled with "
        f"scikit-image as backgrounds. Install it with: {install}") from error
  photos = {}
  for name in BACKGROUND_PHOTOS:
    path = folder / name
    if not path.is_file():
      raise ImportError(
          f"scikit-image at {folder} does not bundle {name}, a background of "
          f"the synthetic multi-view dataset. Reinstall it with: {install}")
    with path.open("rb") as f:
      image = np.asarray(Image.open(f).convert("RGB"), np.float32) / 255.0
    photos[name] = image
  return photos


def _smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
  """[size, size] multi-octave value noise in [0, 1]."""
  total = np.zeros([size, size], np.float32)
  for octave, cells in enumerate((3, 6, 12, 24, 48)):
    grid = rng.uniform(0.0, 1.0, [cells + 1, cells + 1]).astype(np.float32)
    total += 0.5**octave * cv2.resize(grid, (size, size),
                                      interpolation=cv2.INTER_CUBIC)
  total -= total.min()
  return total / max(float(total.max()), 1e-6)


def procedural_texture(rng: np.random.Generator, kind: str,
                       size: int = PROCEDURAL_CANVAS) -> np.ndarray:
  """[size, size, 3] float32 texture in [0, 1]: noise, gradient or stripes."""
  colours = rng.uniform(0.05, 0.95, [3, 3]).astype(np.float32)
  y, x = np.meshgrid(np.linspace(-1.0, 1.0, size, dtype=np.float32),
                     np.linspace(-1.0, 1.0, size, dtype=np.float32),
                     indexing="ij")
  angle = rng.uniform(0.0, np.pi)
  along = x * np.cos(angle) + y * np.sin(angle)
  if kind == "noise":
    t = _smooth_noise(rng, size)
    # Two colour ramps, the second on a second noise field.
    u = _smooth_noise(rng, size)[..., None]
    image = (colours[0] * (1.0 - t[..., None]) + colours[1] * t[..., None])
    image = (1.0 - 0.5 * u) * image + 0.5 * u * colours[2]
  elif kind == "gradient":
    t = np.clip(0.5 + 0.5 * along * rng.uniform(0.6, 1.5), 0.0, 1.0)[..., None]
    image = colours[0] * (1.0 - t) + colours[1] * t
    image = image + 0.08 * (_smooth_noise(rng, size)[..., None] - 0.5)
  elif kind == "stripes":
    cycles = rng.uniform(2.0, 12.0)
    sharpness = rng.uniform(1.0, 8.0)
    wave = np.sin(np.pi * cycles * along + rng.uniform(0.0, 2.0 * np.pi))
    t = 0.5 + 0.5 * np.tanh(sharpness * wave)[..., None]
    image = colours[0] * (1.0 - t) + colours[1] * t
    image = image + 0.06 * (_smooth_noise(rng, size)[..., None] - 0.5)
  else:
    raise ValueError(f"Unknown texture kind {kind!r}; expected one of "
                     f"{PROCEDURAL_KINDS}")
  return np.clip(image, 0.0, 1.0).astype(np.float32)


def _colour_shift(contrast: float, brightness: float, gains: np.ndarray,
                  image: np.ndarray) -> np.ndarray:
  """Contrast about mid-grey, a brightness offset, per-channel gains."""
  image = ((image - 0.5) * contrast + 0.5 + brightness) * gains
  return np.clip(image, 0.0, 1.0).astype(np.float32)


def sample_backgrounds(rng: np.random.Generator, image_size: int,
                       num_views: int = NUM_VIEWS,
                       photo_probability: float = PHOTO_PROBABILITY
                       ) -> np.ndarray:
  """[num_views, S, S, 3] float32 crops of one random scene, one per view.

  The scene is a colour-shifted (a stronger tint for grey ones), maybe
  flipped scikit-image photograph or a procedural texture; the views crop
  it at the same scale and different places (cameras at one instant look at
  different parts of one scene). Crop positions are fractions of the source,
  so they do not depend on S.
  """
  if rng.uniform() < photo_probability:
    name = BACKGROUND_PHOTOS[rng.integers(len(BACKGROUND_PHOTOS))]
    source = background_photos()[name]
    grey = bool(np.all(source[..., 0] == source[..., 1]))
    if rng.uniform() < 0.5:
      source = source[:, ::-1]
    shift = functools.partial(_colour_shift, rng.uniform(0.6, 1.2),
                              rng.uniform(-0.12, 0.12),
                              rng.uniform(1.0 - (0.35 if grey else 0.15),
                                          1.0 + (0.35 if grey else 0.15), 3))
  else:
    kind = PROCEDURAL_KINDS[rng.integers(len(PROCEDURAL_KINDS))]
    source = procedural_texture(rng, kind)
    shift = lambda image: image
  height, width = source.shape[:2]
  side = max(int(round(rng.uniform(*CROP_FRACTION) * min(height, width))), 8)
  crops = []
  for _ in range(num_views):
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = np.ascontiguousarray(source[top:top + side, left:left + side])
    interpolation = cv2.INTER_AREA if side > image_size else cv2.INTER_LINEAR
    crops.append(shift(cv2.resize(crop, (image_size, image_size),
                                  interpolation=interpolation)))
  return np.clip(np.stack(crops), 0.0, 1.0).astype(np.float32)


# --- One scene ----------------------------------------------------------------
def sample_scene(face_model, split: str, index: int,
                 image_size: int, recipe: SceneRecipe = RECIPE_V1,
                 examples_per_identity: int = 1) -> Scene:
  """Draws example `index` of `split` (deterministic).

  Args:
    face_model: the `FaceModel` rendered (the builder uses the embedded one).
    split: "train" (yaw uniform) or "test" (yaw bins balanced).
    index: example index.
    image_size: side S of the square crops, pixels.
    recipe: the dataset version's `SceneRecipe`.
    examples_per_identity: k > 1 makes examples k * p .. k * p + k - 1 one
      person p (identity and albedo from `sample_person`), seen at k
      instants (expression, pose, light, background drawn per example);
      1: every example its own person, as in the original configs.

  Returns:
    A `Scene`.
  """
  rng = example_rng(split, index)
  layout = coefficients_lib.CoefficientLayout.from_face_model(face_model)
  slices = layout.slices()
  id_coeffs, exp_coeffs, shape = sample_shape(rng, face_model,
                                              recipe.exp_sigma,
                                              recipe.max_blendshapes)
  albedo = np.clip(ALBEDO_SIGMA * rng.standard_normal(face_model.albedo_rank),
                   -COEFFICIENT_CLIP, COEFFICIENT_CLIP)
  if examples_per_identity > 1:
    # The example's own draws above are made all the same, so the rest of
    # its stream (pose, light, ...) is what it would be with k = 1.
    id_coeffs, albedo = sample_person(face_model, split,
                                      index // examples_per_identity)
    shape = shape_of(face_model, id_coeffs, exp_coeffs)
    while folded_triangles(face_model, shape) and np.any(exp_coeffs):
      exp_coeffs = np.where(np.abs(exp_coeffs) < 1e-3, 0.0, 0.5 * exp_coeffs)
      shape = shape_of(face_model, id_coeffs, exp_coeffs)
  yaws = sample_view_yaws(rng, split, index)
  landmarks_model = shape[face_model.landmark_indices].astype(np.float64)
  poses = sample_poses(rng, face_model, yaws, landmarks_model, recipe)
  head_lighting = sample_head_lighting(rng, recipe)
  backgrounds = sample_backgrounds(rng, image_size,
                                   photo_probability=recipe.photo_probability)
  # Drawn last, so that v1's draws (and examples) are unchanged.
  occluders = (tuple(occluders_lib.sample_occluders(rng))
               if recipe.occluders else ())

  default = np.asarray(face_model.default_pose, np.float64)
  coefficients = np.zeros([NUM_VIEWS, layout.size], np.float64)
  coefficients[:, slices["identity"]] = id_coeffs
  coefficients[:, slices["expression"]] = exp_coeffs
  coefficients[:, slices["albedo"]] = albedo
  coefficients[:, slices["pose"]] = poses - default
  for view in range(NUM_VIEWS):
    coefficients[view, slices["lighting"]] = lighting_for_view(
        head_lighting, euler_to_rotation_np(poses[view, :3]))
  coefficients = coefficients.astype(np.float32)
  # The stored pose is what the decoder will add up in float32.
  pose = (coefficients[:, slices["pose"]] +
          np.asarray(face_model.default_pose, np.float32))
  return Scene(split=split, index=index, coefficients=coefficients,
               pose=pose.astype(np.float32),
               yaw_degrees=np.rad2deg(pose[:, 1]).astype(np.float32),
               backgrounds=backgrounds, recipe=recipe, occluders=occluders,
               examples_per_identity=examples_per_identity)


# --- Rendering ----------------------------------------------------------------
class SceneRenderer:
  """Renders batches of scenes with one compiled function (static batch).

  Args:
    face_model: the `FaceModel`.
    image_size: side S of the crops, pixels.
    examples_per_batch: scenes per call; the rasterizer needs a static batch
      of examples_per_batch * NUM_VIEWS images.
  """

  def __init__(self, face_model, image_size: int,
               examples_per_batch: int = EXAMPLES_PER_BATCH):
    self.face_model = face_model
    self.image_size = int(image_size)
    self.examples_per_batch = int(examples_per_batch)
    self.decoder = face_decoder.FaceDecoder(face_model)
    batch = self.examples_per_batch * NUM_VIEWS
    self._skin = tf.constant(
        np.asarray(face_model.skin_mask, np.float32)[None, :, None])
    # autograph=False: the function is plain TF ops, and the kernel loader
    # it reaches is Python that AutoGraph would only warn about.
    self._render = tf.function(
        self._render_batch, autograph=False, input_signature=[
            tf.TensorSpec([batch, self.decoder.layout.size], tf.float32),
            tf.TensorSpec([batch, self.image_size, self.image_size, 3],
                          tf.float32)])

  def _render_batch(self, coefficients, backgrounds):
    """Decode, rasterize once, interpolate colour, depth and skin together.

    The same steps as `render.renderer.render_face` (the tests check that
    the images and depths agree) plus the skin region as a fourth attribute.
    """
    size = self.image_size
    face = self.decoder.decode(coefficients, image_size=size)
    raster = rasterizer.rasterize(face.vertices, self.decoder.triangles,
                                  face.intrinsics, (size, size))
    skin = tf.broadcast_to(self._skin, tf.shape(face.vertices[..., :1]))
    attributes = tf.concat([face.colors, face.vertices[..., 2:3], skin], -1)
    values = rasterizer.interpolate(attributes, raster) * raster.mask
    image = values[..., :3] + (1.0 - raster.mask) * backgrounds
    return {"image": image, "depth": values[..., 3],
            "skin": tf.clip_by_value(values[..., 4], 0.0, 1.0),
            "landmarks": face.landmarks_2d}

  def render(self, scenes: Sequence[Scene]) -> List[Dict[str, np.ndarray]]:
    """Renders up to `examples_per_batch` scenes.

    Returns:
      One dict per scene: image [V, S, S, 3] uint8, depth [V, S, S] float32
      mm (0 on background), skin [V, S, S] float32 in [0, 1], landmarks
      [V, 68, 2] float32 crop pixels.
    """
    if not 0 < len(scenes) <= self.examples_per_batch:
      raise ValueError(f"Expected 1..{self.examples_per_batch} scenes. "
                       f"Received: {len(scenes)}")
    # Pad with copies of the last scene: the batch size is static.
    padded = list(scenes) + [scenes[-1]] * (self.examples_per_batch -
                                            len(scenes))
    coefficients = np.concatenate([s.coefficients for s in padded])
    backgrounds = np.concatenate([s.backgrounds for s in padded])
    out = {k: v.numpy() for k, v in self._render(coefficients,
                                                 backgrounds).items()}
    out["image"] = np.round(np.clip(out["image"], 0.0, 1.0) * 255.0).astype(
        np.uint8)
    results = []
    for i in range(len(scenes)):
      views = slice(i * NUM_VIEWS, (i + 1) * NUM_VIEWS)
      results.append({k: v[views] for k, v in out.items()})
    return results


# --- TFDS examples ------------------------------------------------------------
def extra_features(image_size: int, num_coefficients: int,
                   recipe: SceneRecipe = RECIPE_V1) -> dict:
  """Ground-truth features added to `features.multiview_features`."""
  extra = {
      COEFFICIENTS_KEY: tfds.features.Tensor(
          shape=(NUM_VIEWS, num_coefficients), dtype=np.float32,
          doc=("[V, K] float32: per view, the ground-truth coefficient vector "
               "in the face model's layout [identity | albedo | expression | "
               "pose 6 | SH lighting 27]; identity, albedo and expression in "
               "units of one standard deviation and shared by the views; "
               "pose = offset from the model's default pose, (rz, ry, rx) "
               "radians then (tx, ty, tz) mm; lighting: 9 SH coefficients "
               "per colour channel, in the camera frame.")),
      POSE_KEY: tfds.features.Tensor(
          shape=(NUM_VIEWS, 6), dtype=np.float32,
          doc=("[V, 6] float32: per view, the absolute head pose (rz, ry, "
               "rx) radians, (tx, ty, tz) mm = default pose + the pose "
               "offset in `coefficients`; X_camera = R X_model + t with R = "
               "Rx(rx) Ry(ry) Rz(rz). Model frame: x to the viewer's right, "
               "y up, z out of the face, mm; "
               f"{features_lib.CAMERA_FRAME}, mm.")),
      YAW_KEY: tfds.features.Tensor(
          shape=(NUM_VIEWS,), dtype=np.float32,
          doc=("[V] float32 degrees: per view, the head yaw the camera sees "
               "(the absolute ry), positive when the nose turns towards the "
               "image's right. View 1 is the target.")),
      DEPTH_KEY: tfds.features.Tensor(
          shape=(NUM_VIEWS, image_size, image_size), dtype=np.float32,
          encoding=tfds.features.Encoding.ZLIB,
          doc=("[V, S, S] float32 mm: per view, the rendered depth (z in the "
               f"{features_lib.CAMERA_FRAME}) of the face at each crop "
               "pixel, 0 on the background"
               + (" and where an occluder covers the face." if recipe.occluders
                  else "."))),
  }
  if recipe.detected_landmarks:
    extra[TRUE_LANDMARKS_KEY] = tfds.features.Tensor(
        shape=(NUM_VIEWS, features_lib.NUM_LANDMARKS, 2), dtype=np.float32,
        doc=("[V, 68, 2] float32: per view, the exact 68 landmarks of the "
             "rendered face (iBUG order, crop pixels, visible or not); "
             "`landmarks` holds what the detector gave. Evaluation uses "
             "these."))
    extra[LANDMARK_STATUS_KEY] = tfds.features.Tensor(
        shape=(NUM_VIEWS,), dtype=np.int32,
        doc=("[V] int32: how each view's `landmarks` were made "
             "(mgc_tf.faces2d.detected_landmarks.LandmarkStatus): 0 detected "
             "(dlib's HOG detector finds the face; its 68-point predictor's "
             "output), 1 drifted (found, but the predictor is off by more "
             "than 9% NME; kept as it is), 2 not found by the detector "
             "(truth + noise modelled on the detector's error at that yaw), "
             "3 modelled (no detector installed at build time: truth + "
             "modelled noise)."))
  if recipe.occluders:
    def per_view_mask(doc: str) -> tfds.features.Sequence:
      return tfds.features.Sequence(
          tfds.features.Image(shape=(image_size, image_size, 1),
                              encoding_format="png"),
          length=NUM_VIEWS, doc=doc)
    extra[OCCLUSION_KEY] = per_view_mask(
        "Per view, the occluders' coverage of the crop, [S, S, 1] uint8 = "
        "alpha x 255 (> 127: occluded), over face and background.")
    extra[FACE_MASK_KEY] = per_view_mask(
        "Per view, the visible face, [S, S, 1] uint8 255 / 0: pixels the "
        "rendered face covers and no occluder hides.")
    extra[OCCLUDED_FRACTION_KEY] = tfds.features.Tensor(
        shape=(NUM_VIEWS,), dtype=np.float32,
        doc=("[V] float32: fraction of the rendered face's pixels that "
             "occluders hide (0 for a clean view)."))
    extra[OCCLUDERS_KEY] = tfds.features.Text(
        doc=("The kinds of occluders in front of the face, comma separated "
             "(the same objects in every view); 'none' when clean."))
  return extra


def landmark_rng(split: str, index: int) -> np.random.Generator:
  """The generator of an example's modelled landmark noise: its own stream,
  so that it changes nothing else the example draws."""
  return np.random.default_rng(
      [DATASET_SEED, SPLIT_STREAMS[split], index, 1])


def occlude_views(scene: Scene, rendered: Dict[str, np.ndarray],
                  landmark_source=None) -> Dict[str, np.ndarray]:
  """Version 2.0.0's views: what a camera and a real pipeline would give.

  Puts the scene's occluders in front of each view (drawn relative to that
  view's true landmarks), removes the hidden pixels from the face's depth
  and mask, computes the skin map with the colour model on the final image
  (as for real photos) and finds the landmarks with `landmark_source`.

  Args:
    scene: a v2 `Scene`.
    rendered: one `SceneRenderer.render` result: image [V, S, S, 3] uint8,
      depth [V, S, S], skin [V, S, S], landmarks [V, 68, 2] (exact).
    landmark_source: a `detected_landmarks.LandmarkSource`; None keeps the
      exact landmarks.

  Returns:
    `rendered`'s keys, replaced (image, depth, skin; landmarks: detected
    when a source is given, then also landmarks_true and landmark_status
    [V]), plus occlusion [V, S, S] uint8, face_mask [V, S, S] uint8 and
    occluded_fraction [V].
  """
  size = rendered["image"].shape[1]
  true_landmarks = rendered["landmarks"]
  images, occlusions, masks, depths, skins, fractions = [], [], [], [], [], []
  for view in range(len(true_landmarks)):
    rgb, alpha = occluders_lib.draw_occluders(
        scene.occluders, true_landmarks[view], size)
    image = occluders_lib.composite(rendered["image"][view], rgb, alpha)
    # Hidden pixels from the stored (quantised) alpha, so that the stored
    # occlusion, face mask and depth agree exactly.
    occlusion = np.round(alpha * 255.0).astype(np.uint8)
    hidden = occlusion > 127
    face = rendered["depth"][view] > 0
    visible = face & ~hidden
    images.append(image)
    occlusions.append(occlusion)
    masks.append(visible.astype(np.uint8) * 255)
    depths.append(np.where(visible, rendered["depth"][view], 0.0))
    skins.append(skin_lib.skin_probability(image))
    fractions.append(np.sum(face & hidden) / max(int(np.sum(face)), 1))
  views = {
      "image": np.stack(images), "depth": np.stack(depths).astype(np.float32),
      "skin": np.stack(skins), "landmarks": true_landmarks,
      OCCLUSION_KEY: np.stack(occlusions), FACE_MASK_KEY: np.stack(masks),
      OCCLUDED_FRACTION_KEY: np.array(fractions, np.float32),
  }
  if landmark_source is not None:
    views["landmarks"], views[LANDMARK_STATUS_KEY] = landmark_source.views(
        views["image"], true_landmarks, scene.yaw_degrees,
        landmark_rng(scene.split, scene.index))
    views[TRUE_LANDMARKS_KEY] = true_landmarks.astype(np.float32)
  return views


def to_example(scene: Scene, rendered: Dict[str, np.ndarray],
               image_size: int) -> dict:
  """A scene and its renders (`occlude_views`'s for v2) -> the feature dict
  the builder yields."""
  example = features_lib.stack_views(
      images=list(rendered["image"]), landmarks=list(rendered["landmarks"]),
      skins=list(rendered["skin"]), identity=scene.identity,
      image_size=image_size)
  example.update({
      COEFFICIENTS_KEY: scene.coefficients,
      POSE_KEY: scene.pose,
      YAW_KEY: scene.yaw_degrees,
      DEPTH_KEY: rendered["depth"].astype(np.float32),
  })
  if TRUE_LANDMARKS_KEY in rendered:
    example[TRUE_LANDMARKS_KEY] = rendered[TRUE_LANDMARKS_KEY]
    example[LANDMARK_STATUS_KEY] = rendered[LANDMARK_STATUS_KEY]
  if OCCLUSION_KEY in rendered:
    example[OCCLUSION_KEY] = [m[..., None] for m in rendered[OCCLUSION_KEY]]
    example[FACE_MASK_KEY] = [m[..., None] for m in rendered[FACE_MASK_KEY]]
    example[OCCLUDED_FRACTION_KEY] = rendered[OCCLUDED_FRACTION_KEY]
    example[OCCLUDERS_KEY] = occluders_lib.describe(scene.occluders)
  return example


def generate_examples(split: str, num_examples: int, image_size: int,
                      face_model=None,
                      renderer: Optional[SceneRenderer] = None,
                      start: int = 0, recipe: SceneRecipe = RECIPE_V1,
                      landmark_source=None,
                      examples_per_identity: int = 1
                      ) -> Iterator[Tuple[int, dict]]:
  """Yields (index, example) for indices start .. start + num_examples - 1.

  Args:
    split: "train" or "test".
    num_examples: how many examples.
    image_size: side S of the crops.
    face_model: default: the embedded synthetic model.
    renderer: a `SceneRenderer` to reuse (its model and size must match).
    start: first index.
    recipe: the dataset version's `SceneRecipe`.
    landmark_source: for a recipe with detected landmarks, the
      `detected_landmarks` source (None: the exact landmarks).
    examples_per_identity: see `sample_scene`.
  """
  if face_model is None:
    face_model = synthetic.embedded_face_model()
  if renderer is None:
    renderer = SceneRenderer(face_model, image_size)
  if (renderer.image_size != image_size or
      renderer.face_model is not face_model):
    raise ValueError("The renderer was built for another image size or face "
                     "model.")
  indices = range(start, start + num_examples)
  step = renderer.examples_per_batch
  for first in range(0, len(indices), step):
    batch = indices[first:first + step]
    scenes = [sample_scene(face_model, split, i, image_size, recipe,
                           examples_per_identity)
              for i in batch]
    for scene, rendered in zip(scenes, renderer.render(scenes)):
      if recipe.occluders:
        rendered = occlude_views(scene, rendered,
                                 landmark_source if recipe.detected_landmarks
                                 else None)
      yield scene.index, to_example(scene, rendered, image_size)
