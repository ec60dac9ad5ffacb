"""Per-person fitting: optimise 3DMM coefficients against one person's images.

The objective is MGCNet's (`mgc_tf.losses.mgc_loss.MGCLoss`) evaluated on
variables instead of a network's outputs:

  PHOTOS  each image alone: B = N samples of one view, flag 0, so the render,
          landmark, identity and regularisation terms only. Every image has
          its own identity, albedo, expression, pose and lighting.
  SET     N photos of one person: one sample of N views, flag 2 (multi-view
          + epipolar). One identity and one albedo shared by all images
          (a single variable each, so they cannot drift apart); expression,
          pose and lighting per image. The middle image is the target of
          the covisible pixel, depth and epipolar terms, as in training.
  VIDEO   SET over the frames in time order, plus
          w_pose L_smooth(pose) + w_exp L_smooth(expression)
          (`mgc_tf.losses.temporal`) between consecutive frames.

Optimiser: Adam on the coefficient groups. Translation is optimised in units
of `FitConfig.translation_unit_mm` mm, so one learning rate suits radians,
standard deviations and millimetres alike (Adam's step is about the learning
rate in the variable's units).

Start: the mean face, or given coefficients, e.g. a trained network's
prediction; for SET/VIDEO the shared identity and albedo start at the mean
of the given ones. From the mean face with landmarks, each image's pose
starts where the mean face's landmark vertices best explain its landmarks
(`pose_from_landmarks`: eq. 4 of the PGN paper with 2D targets, closed
form; `FitConfig.start_pose`); without landmarks, at the default pose.
"""

import dataclasses
import enum
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

from mgc_tf import geometry
from mgc_tf.geometry import landmark_pose
from mgc_tf.io.progress import progress
from mgc_tf.losses import identity as identity_lib
from mgc_tf.losses import mgc_loss
from mgc_tf.losses import temporal

SHARED_GROUPS = ("identity", "albedo")
#: FitConfig.start_pose values.
START_POSES = ("landmarks", "default")
PER_IMAGE_GROUPS = ("expression", "pose", "lighting")


class FitMode(enum.Enum):
  PHOTOS = "photos"
  SET = "set"
  VIDEO = "video"


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """How a fit runs.

  Attributes:
    steps: optimiser iterations.
    learning_rate: Adam's learning rate (per step, in variable units: std
      for identity/albedo/expression, radians for rotation,
      `translation_unit_mm` for translation).
    weights: the MGCNet loss weights (paper defaults).
    pose_smoothness: VIDEO: weight of L_smooth on the pose (rad^2, and
      translation_unit_mm^2).
    expression_smoothness: VIDEO: weight of L_smooth on the expression.
    translation_unit_mm: mm per unit of the translation variables.
    use_covisible_map: as in `MGCLoss` (False: the target's face mask).
    epipolar_start: SET/VIDEO: fraction of the steps after which the
      epipolar term is on. Every image starts at the same pose, where the
      relative translation is ~0 and the epipolar distance (invariant to its
      scale) is ill-defined: its gradient then turns the poses at random
      (measured: landmark loss 555 px^2 after 60 steps with it, 6 without).
    start_pose: the pose a fit from the mean face starts at: "landmarks"
      (solved from the images' landmarks, when given; `pose_from_landmarks`)
      or "default" (the face model's default pose, frontal). A fit from
      given coefficients keeps their pose.
    compiled: trace the step with tf.function. Tracing the renderer and
      losses costs about as much as 20-50 eager steps, so a few-step fit
      (tests) runs faster eagerly.
    prediction_regularization: weight of the coefficient prior (the
      `regularization` of `weights`) when the fit starts from a network's
      prediction; None keeps `weights.regularization`. From the mean face
      the paper's weight (1e-4) lets real faces move away from the mean
      (astronaut vs Grace Hopper 2.44 mm; 0.37 mm at 1e-2); from a
      prediction, 1e-2 keeps single views from overfitting (chosen on the
      synthetic train split among 1e-4, 1e-3, 1e-2, 1e-1: -8 %, -24 %,
      -29 %, -25 % vertex error; docs/fitting.md).
  """
  steps: int = 100
  learning_rate: float = 0.02
  weights: mgc_loss.MGCLossWeights = mgc_loss.MGCLossWeights()
  pose_smoothness: float = 1.0
  expression_smoothness: float = 0.1
  translation_unit_mm: float = 20.0
  use_covisible_map: bool = True
  epipolar_start: float = 0.5
  start_pose: str = "landmarks"
  compiled: bool = True
  prediction_regularization: Optional[float] = 1e-2

  def __post_init__(self):
    if self.steps < 0:
      raise ValueError(f"steps must be >= 0. Received: steps={self.steps}")
    if self.learning_rate <= 0:
      raise ValueError("learning_rate must be positive. Received: "
                       f"learning_rate={self.learning_rate}")
    if self.translation_unit_mm <= 0:
      raise ValueError("translation_unit_mm must be positive. Received: "
                       f"translation_unit_mm={self.translation_unit_mm}")
    if (self.prediction_regularization is not None and
        self.prediction_regularization < 0):
      raise ValueError("prediction_regularization must be >= 0. Received: "
                       f"{self.prediction_regularization}")
    if self.start_pose not in START_POSES:
      raise ValueError(f"start_pose must be one of {START_POSES}. Received: "
                       f"start_pose={self.start_pose!r}")
    if self.weights.regularization < 0:
      raise ValueError("the regularization weight must be >= 0. Received: "
                       f"{self.weights.regularization}")

  def regularization(self, from_prediction: bool) -> float:
    """The prior's weight for a fit from a prediction or from the mean."""
    if from_prediction and self.prediction_regularization is not None:
      return float(self.prediction_regularization)
    return float(self.weights.regularization)


def pose_from_landmarks(decoder, landmarks, image_size: int) -> np.ndarray:
  """The pose slot that puts the mean face's landmarks on given 2D ones.

  Closed form, weak perspective (`landmark_pose.affine_from_2d_landmarks`,
  then the similarity and its conversion to our pinhole camera, as the PGN
  method's solve). A fit that starts frontal on a turned head explains
  the asymmetric outline with identity more than with yaw; this start
  gives it the turn first.

  Args:
    decoder: the `FaceDecoder`.
    landmarks: [N, 68, 2] crop pixels.
    image_size: the crops' side S, pixels (the camera is the face model's,
      scaled to S).

  Returns:
    [N, 6] float32 pose coefficients (offsets from the default pose); an
    image whose landmarks only a face turned away fits (mirrored ones) or
    that gives no finite solve gets the default pose (zeros).
  """
  landmarks = tf.convert_to_tensor(landmarks, tf.float32)
  count = landmarks.shape[0]
  model = decoder.landmark_shape(tf.zeros([count, decoder.layout.id_rank]),
                                 tf.zeros([count, decoder.layout.exp_rank]))
  focal = decoder.focal_length * image_size / decoder.image_size
  affine = landmark_pose.affine_from_2d_landmarks(model, landmarks)
  similarity = landmark_pose.similarity_from_affine(affine)
  pose = decoder.pose_coefficients(landmark_pose.pose_from_similarity(
      similarity, model, focal, image_size / 2.0)).numpy()
  # The completed affine is always a proper rotation; mirrored landmarks
  # come out as the face seen from behind: the rotation from the default
  # pose turns the camera axis by more than 90 degrees.
  turn = tf.matmul(similarity[1], geometry.euler_to_rotation(
      decoder.default_pose[None, :3]), transpose_b=True)
  facing = turn.numpy()[:, 2, 2] > 0
  usable = facing & (similarity[0].numpy() > 0) & np.all(
      np.isfinite(pose), axis=-1)
  return np.where(usable[:, None], pose, 0.0).astype(np.float32)


@dataclasses.dataclass
class FitResult:
  """What a fit returns.

  Attributes:
    coefficients: [N, K] float32 fitted coefficients, one row per image
      (decoder.layout); in SET/VIDEO their identity and albedo are equal.
    initial: [N, K] float32 the starting coefficients.
    losses: [steps + 1] float total loss before each update and after the
      last one (so losses[0] is the start, losses[-1] the result).
    terms: name -> [steps + 1] each unweighted term, same steps.
    mode: the FitMode.
  """
  coefficients: np.ndarray
  initial: np.ndarray
  losses: np.ndarray
  terms: Dict[str, np.ndarray]
  mode: FitMode

  def curve(self) -> Dict[str, List[float]]:
    """{"total": [...], <term>: [...]} as lists, for a JSON file."""
    out = {"total": self.losses.tolist()}
    out.update({name: values.tolist() for name, values in self.terms.items()})
    return out


class FitVariables:
  """The coefficient groups of N images as variables.

  Shared groups (identity, albedo in SET/VIDEO) are one [1, k] variable
  broadcast to every image; the others are [N, k].

  Args:
    layout: the decoder's `CoefficientLayout`.
    initial: [N, K] starting coefficients.
    shared: share identity and albedo between the N images.
    translation_unit_mm: mm per unit of the translation variables.
  """

  def __init__(self, layout, initial: np.ndarray, shared: bool,
               translation_unit_mm: float):
    initial = np.asarray(initial, np.float32)
    if initial.ndim != 2 or initial.shape[1] != layout.size:
      raise ValueError(f"initial must be [N, {layout.size}]. Received: "
                       f"shape={initial.shape}")
    self.layout = layout
    self.count = initial.shape[0]
    self.shared = shared
    # Rotation in radians, translation in translation_unit_mm.
    self._pose_scale = tf.constant(
        [1.0, 1.0, 1.0] + [translation_unit_mm] * 3, tf.float32)
    groups = {name: initial[:, s] for name, s in layout.slices().items()}
    groups["pose"] = groups["pose"] / self._pose_scale.numpy()
    self.groups = {}
    for name, values in groups.items():
      if shared and name in SHARED_GROUPS:
        values = values.mean(axis=0, keepdims=True)
      self.groups[name] = tf.Variable(values, name=name, dtype=tf.float32)

  @property
  def variables(self) -> List[tf.Variable]:
    return list(self.groups.values())

  def group(self, name: str) -> tf.Tensor:
    """[N, k] one group's coefficients (shared ones broadcast)."""
    value = self.groups[name]
    if name == "pose":
      value = value * self._pose_scale
    return tf.broadcast_to(value, [self.count, value.shape[1]])

  def scaled(self, name: str) -> tf.Tensor:
    """[N or 1, k] a group in optimiser units (for smoothness terms)."""
    return tf.convert_to_tensor(self.groups[name])

  def coefficients(self) -> tf.Tensor:
    """[N, K] the coefficients of the N images."""
    return self.layout.join({name: self.group(name)
                             for name in self.layout.names})


@dataclasses.dataclass
class FitProblem:
  """One fit, ready to run (`Fitter.problem`).

  Attributes:
    mode: the FitMode.
    initial: [N, K] the starting coefficients.
    variables: the `FitVariables`.
    step: () -> (total, terms): one optimiser update (a tf.function); the
      loss is the one before the update.
    objective: () -> (total, terms) at the current variables.
    set_epipolar: (bool) -> None: turns the epipolar term on or off (SET
      and VIDEO with landmarks; a no-op otherwise).
  """
  mode: FitMode
  initial: np.ndarray
  variables: FitVariables
  step: Callable[[], tuple]
  objective: Callable[[], tuple]
  set_epipolar: Callable[[bool], None]


class Fitter:
  """Fits coefficients to images with the MGCNet objective (module doc).

  Args:
    decoder: a `FaceDecoder`.
    config: `FitConfig`.
    identity_loss: an `IdentityLoss` (e.g. `IdentityLoss.from_spec("dlib")`);
      None turns the identity term off.
  """

  def __init__(self, decoder, config: FitConfig = FitConfig(),
               identity_loss: Optional[identity_lib.IdentityLoss] = None):
    self.decoder = decoder
    self.config = config
    self.identity_loss = identity_loss or identity_lib.IdentityLoss(None)

  def _loss(self, images: tf.Tensor, landmarks: Optional[tf.Tensor],
            from_prediction: bool) -> mgc_loss.MGCLoss:
    """The MGCLoss of one fit; without landmarks their term is weighted 0;
    the prior's weight is `FitConfig.regularization(from_prediction)`.

    The images are fixed during a fit, so the identity term embeds them
    once (`IdentityLoss.for_fixed_images`) and each step only the renders.
    """
    weights = dataclasses.replace(
        self.config.weights,
        regularization=self.config.regularization(from_prediction))
    if landmarks is None:
      weights = dataclasses.replace(weights, landmark=0.0, epipolar=0.0)
    return mgc_loss.MGCLoss(
        self.decoder, weights,
        identity_loss=self.identity_loss.for_fixed_images(images, landmarks),
        use_covisible_map=self.config.use_covisible_map)

  def problem(self, images, landmarks=None, mode: FitMode = FitMode.PHOTOS,
              initial: Optional[np.ndarray] = None, skin=None
              ) -> "FitProblem":
    """The variables, objective and optimiser step of a fit (`fit`'s args).

    `fit` runs it; benchmarks time `FitProblem.step` alone. The epipolar
    term starts off (`FitProblem.set_epipolar`).
    """
    mode = FitMode(mode)
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4 or images.shape[-1] != 3 or (
        images.shape[1] != images.shape[2]):
      raise ValueError("images must be square crops [N, S, S, 3]. Received: "
                       f"images.shape={images.shape}")
    count, size = images.shape[0], images.shape[1]
    if not count:
      raise ValueError("No image to fit (N = 0).")
    layout = self.decoder.layout
    from_prediction = initial is not None
    if initial is None:
      initial = np.zeros([count, layout.size], np.float32)
    initial = np.asarray(initial, np.float32)
    if initial.shape != (count, layout.size):
      raise ValueError(f"initial must be [{count}, {layout.size}]. "
                       f"Received: shape={initial.shape}")
    landmarks_known = landmarks is not None
    if landmarks_known:
      landmarks = tf.convert_to_tensor(landmarks, tf.float32)
      if landmarks.shape != (count, 68, 2):
        raise ValueError(f"landmarks must be [{count}, 68, 2]. Received: "
                         f"landmarks.shape={landmarks.shape}")
      if not from_prediction and self.config.start_pose == "landmarks":
        initial = initial.copy()
        initial[:, layout.slices()["pose"]] = pose_from_landmarks(
            self.decoder, landmarks, size)
    else:
      landmarks = tf.zeros([count, 68, 2])
    joint = mode != FitMode.PHOTOS
    # PHOTOS: N samples of 1 view; SET/VIDEO: 1 sample of N views.
    batch, views = (1, count) if joint else (count, 1)
    flag = (2 if landmarks_known else 1) if joint and count > 1 else 0
    images_bn = tf.reshape(images, [batch, views, size, size, 3])
    landmarks_bn = tf.reshape(landmarks, [batch, views, 68, 2])
    skin_bn = (None if skin is None else
               tf.reshape(tf.cast(skin, tf.float32),
                          [batch, views, size, size, 1]))
    flags = tf.Variable(tf.fill([batch], min(flag, 1)), trainable=False)
    variables = FitVariables(layout, initial, shared=joint,
                             translation_unit_mm=self.config.translation_unit_mm)
    loss = self._loss(images, landmarks if landmarks_known else None,
                      from_prediction)
    smooth = mode == FitMode.VIDEO and count > 1
    config = self.config
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)

    def objective():
      coefficients = tf.reshape(variables.coefficients(),
                                [batch, views, layout.size])
      output = loss(coefficients, images_bn, landmarks_bn, flags,
                    skin=skin_bn)
      total, terms = output.total, dict(output.terms)
      if smooth:
        terms["pose_smoothness"] = temporal.temporal_smoothness(
            variables.scaled("pose"))
        terms["expression_smoothness"] = temporal.temporal_smoothness(
            variables.scaled("expression"))
        total += (config.pose_smoothness * terms["pose_smoothness"] +
                  config.expression_smoothness *
                  terms["expression_smoothness"])
      return total, terms

    def set_epipolar(on):
      flags.assign(tf.fill([batch], flag if on else min(flag, 1)))

    def step():
      with tf.GradientTape() as tape:
        total, terms = objective()
      gradients = tape.gradient(total, variables.variables)
      optimizer.apply_gradients(zip(gradients, variables.variables))
      return total, terms

    return FitProblem(mode=mode, initial=initial, variables=variables,
                      step=tf.function(step) if config.compiled else step,
                      objective=objective, set_epipolar=set_epipolar)

  def fit(self, images, landmarks=None, mode: FitMode = FitMode.PHOTOS,
          initial: Optional[np.ndarray] = None, skin=None,
          show_progress: bool = False, description: str = "fit",
          callback: Optional[Callable[[int, float], None]] = None
          ) -> FitResult:
    """Fits N images.

    Args:
      images: [N, S, S, 3] float32 RGB in [0, 1], aligned square crops
        (any S; the camera is the face model's, scaled to S).
      landmarks: [N, 68, 2] float32 target landmarks in crop pixels (e.g.
        dlib's); None: no landmark or epipolar term.
      mode: FitMode (PHOTOS: each image alone; SET: one person; VIDEO: one
        person, images in time order).
      initial: [N, K] starting coefficients; None: the mean face (zeros).
      skin: optional [N, S, S, 1] skin probability weighting the render
        term.
      show_progress: draw a progress bar.
      description: the progress bar's label.
      callback: called as callback(step, total_loss) after each step.

    Returns:
      FitResult.
    """
    problem = self.problem(images, landmarks, mode, initial, skin)
    totals, history = [], {}

    def record(total, terms):
      totals.append(float(total))
      for name, value in terms.items():
        history.setdefault(name, []).append(float(value))

    steps = self.config.steps
    # Before `epipolar_start`, flag 2 drops to 1 (see FitConfig).
    epipolar_step = int(round(self.config.epipolar_start * steps))
    for index in progress(range(steps), total=steps, description=description,
                          unit="step", enabled=show_progress):
      if index == epipolar_step:
        problem.set_epipolar(True)
      record(*problem.step())
      if callback is not None:
        callback(index, totals[-1])
    problem.set_epipolar(True)
    # Eagerly: a second traced function would cost a second trace of the
    # renderer and losses, longer than one eager call.
    record(*problem.objective())
    return FitResult(
        coefficients=problem.variables.coefficients().numpy(),
        initial=problem.initial, losses=np.asarray(totals), mode=problem.mode,
        terms={name: np.asarray(values) for name, values in history.items()})
