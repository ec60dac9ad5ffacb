"""Inference over a video: per-frame faces, temporal smoothing, overlay video.

Two passes over the file (decoded twice, so memory does not grow with the
video's length):

  1. every frame: the largest face is found and aligned (or the frame is
     taken as an aligned crop), and the model predicts its coefficients,
     `batch_size` crops per call. Frames without a face are counted by
     reason and marked (`has_face` false, NaN values).
  2. the pose and expression coefficients, and the crop transforms, are
     smoothed over time (`mgc_tf.inference.smoothing`; gaps are frames
     without a face), and every frame is rendered with the smoothed values,
     composited into the frame and written to the overlay video at the
     input's frame rate. Frames without a face are written unchanged.

A model with a refined texture (the robust method's `albedo_refined`)
gives one texture per video: the mean of its per-frame outputs over the
frames with a face (kept as a running sum, so memory stays flat; the face
is one person's, and a per-frame texture would flicker). Every frame is
shaded with it and its own lighting.

Files, with `<stem>` the video's file stem:

  <stem>.npz            arrays over the T decoded frames (`VIDEO_ARRAYS`)
  <stem>.json           run facts and per-frame pose (raw and smoothed)
  <stem>_overlay.mp4    the overlay video (mp4v; `.avi` MJPG when this
                        OpenCV cannot write mp4)
  <stem>_frame<i>.obj   smoothed meshes of every `mesh_every`-th frame
                        (frame index i, 6 digits), when mesh_every > 0
"""

import collections
import dataclasses
import os
from typing import Callable, Dict, List, Optional

import numpy as np

from mgc_tf.inference import outputs
from mgc_tf.inference import overlay
from mgc_tf.inference import reconstruct
from mgc_tf.inference import smoothing
from mgc_tf.inference.faces import CROP_SIZE
from mgc_tf.io.bad_input import BadExampleError
from mgc_tf.io.progress import progress
from mgc_tf.io.video_io import VideoReader
from mgc_tf.models import gcn

# Used when the container reports no frame rate.
DEFAULT_FPS = 25.0

# Documentation of the .npz, also the order keys are written in.
VIDEO_ARRAYS = {
    "frame_index": "[T] int64 frame position in the video, from 0",
    "time_s": "[T] float64 frame_index / fps, seconds",
    "has_face": "[T] bool, a face was found (else the rows are NaN)",
    "coefficients_raw": "[T, K] float32 predicted coefficients",
    "coefficients": "[T, K] float32, pose and expression groups smoothed",
    "pose_raw": "[T, 6] full pose (rz, ry, rx) rad, (tx, ty, tz) mm",
    "pose": "[T, 6] smoothed full pose",
    "expression_raw": "[T, E] expression coefficients",
    "expression": "[T, E] smoothed expression coefficients",
    "landmarks_2d_raw": "[T, 68, 2] model landmarks, original pixels",
    "landmarks_2d": "[T, 68, 2] smoothed model landmarks, original pixels",
    "landmarks_2d_crop": "[T, 68, 2] smoothed model landmarks, crop pixels",
    "detected_landmarks": "[T, 68, 2] detected landmarks, original pixels",
    "crop_transform_raw": "[T, 2, 3] original -> crop pixels, per frame",
    "crop_transform": "[T, 2, 3] smoothed crop transform",
    "box": "[T, 4] face box (x0, y0, x1, y1), original pixels",
    "fps": "[] frames per second of the overlay video",
    "image_size_hw": "[2] frame height, width",
    "albedo_refined": "[V, 3] float32, models with a refined texture only: "
                      "its mean over the frames with a face, which every "
                      "frame is shaded with",
}


@dataclasses.dataclass
class VideoResult:
  """What a run over one video did.

  Attributes:
    path: the video.
    frames: frames decoded (T).
    frames_with_face: frames with a reconstructed face.
    skipped: {reason: frames} for frames without a face.
    fps: frame rate of the overlay video.
    files: every file written.
  """
  path: str
  frames: int
  frames_with_face: int
  skipped: Dict[str, int]
  fps: float
  files: List[str]

  def summary(self) -> str:
    lines = [f"{self.path}: {self.frames} frames, {self.frames_with_face} "
             f"with a face, {self.frames - self.frames_with_face} without"]
    lines += [f"  {n} x {reason}" for reason, n in
              sorted(self.skipped.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


@dataclasses.dataclass
class _Track:
  """Pass-1 results, one row per decoded frame (NaN without a face)."""
  coefficients: np.ndarray  # [T, K]
  transforms: np.ndarray  # [T, 2, 3]
  detected: np.ndarray  # [T, 68, 2] crop pixels
  boxes: np.ndarray  # [T, 4]
  height: int
  width: int
  # [V, 3] mean refined albedo over the frames with a face, or None.
  refined_albedo: Optional[np.ndarray] = None

  @property
  def valid(self) -> np.ndarray:
    return np.all(np.isfinite(self.coefficients), axis=1)


def _find_faces(path: str, predictor, finder, batch_size: int,
                show_progress: bool, skipped: Dict[str, int],
                examples: Dict[str, str]) -> _Track:
  """Pass 1: faces and coefficients of every frame."""
  rows = collections.defaultdict(list)
  pending = []  # (frame index, FaceCrop)
  size = predictor.decoder.layout.size
  height = width = 0
  refined = {"sum": None, "count": 0}

  def flush():
    predicted = reconstruct.predict_outputs(
        predictor, [crop.image for _, crop in pending], batch_size)
    coefficients = predicted["coefficients"]
    albedo = predicted.get(gcn.REFINED_ALBEDO_OUTPUT)
    if albedo is not None:
      total = albedo.astype(np.float64).sum(axis=0)
      refined["sum"] = total if refined["sum"] is None else (
          refined["sum"] + total)
      refined["count"] += len(albedo)
    for (index, crop), row in zip(pending, coefficients):
      rows["coefficients"][index] = row
      rows["transforms"][index] = crop.transform
      if crop.landmarks is not None:
        rows["detected"][index] = crop.landmarks
      rows["boxes"][index] = crop.box
    pending.clear()

  frames = 0
  with VideoReader(path) as reader:
    total = reader.properties.frame_count
    for index, frame in progress(reader.frames(),
                                 total=total if total > 0 else None,
                                 description="faces (pass 1/2)",
                                 unit="frame", enabled=show_progress):
      frames = index + 1
      height, width = frame.shape[:2]
      for key in ("coefficients", "transforms", "detected", "boxes"):
        rows[key].append(None)
      try:
        pending.append((index, finder.find(frame, all_faces=False)[0]))
      except BadExampleError as error:
        skipped[error.reason] = skipped.get(error.reason, 0) + 1
        examples.setdefault(error.reason, f"frame {index}: {error}")
      if len(pending) >= batch_size:
        flush()
  if pending:
    flush()

  def stack(values, shape):
    out = np.full([frames] + shape, np.nan)
    for t, value in enumerate(values):
      if value is not None:
        out[t] = value
    return out

  return _Track(coefficients=stack(rows["coefficients"], [size]),
                transforms=stack(rows["transforms"], [2, 3]),
                detected=stack(rows["detected"], [68, 2]),
                boxes=stack(rows["boxes"], [4]),
                height=height, width=width,
                refined_albedo=(None if not refined["count"] else
                                (refined["sum"] / refined["count"]).astype(
                                    np.float32)))


def smooth_track(coefficients: np.ndarray, transforms: np.ndarray,
                 valid: np.ndarray, layout, config: smoothing.SmoothingConfig):
  """Smooths the pose and expression groups and the crop transforms.

  Args:
    coefficients: [T, K] per-frame coefficients (NaN rows without a face).
    transforms: [T, 2, 3] per-frame crop transforms (similarities; an
      average of similarities [[a, b, .], [-b, a, .]] is one too).
    valid: [T] bool.
    layout: the decoder's CoefficientLayout.
    config: SmoothingConfig.

  Returns:
    (coefficients [T, K], transforms [T, 2, 3]), smoothed, NaN where
    invalid; the other coefficient groups are unchanged.
  """
  smoothed = np.where(valid[:, None], coefficients, np.nan)
  slices = layout.slices()
  for group in ("pose", "expression"):
    smoothed[:, slices[group]] = smoothing.smooth(
        coefficients[:, slices[group]], valid, config)
  flat = smoothing.smooth(transforms.reshape(len(transforms), 6), valid,
                          config)
  return smoothed, flat.reshape(transforms.shape)


def _decode_all(decoder, coefficients: np.ndarray, valid: np.ndarray,
                batch_size: int):
  """Full pose [T, 6] and crop landmarks [T, 68, 2] (NaN where invalid)."""
  pose = np.full([len(coefficients), 6], np.nan)
  landmarks = np.full([len(coefficients), 68, 2], np.nan)
  rows = np.flatnonzero(valid)
  for start in range(0, len(rows), batch_size):
    chunk = rows[start:start + batch_size]
    recon = reconstruct.reconstruct(decoder, coefficients[chunk], render=False)
    pose[chunk] = recon.pose
    landmarks[chunk] = recon.landmarks_2d
  return pose, landmarks


def _map_to_original(transforms: np.ndarray, points: np.ndarray,
                     valid: np.ndarray) -> np.ndarray:
  """[T, L, 2] crop pixels -> original pixels per frame (NaN where invalid)."""
  out = np.full(points.shape, np.nan)
  for t in np.flatnonzero(valid):
    if np.all(np.isfinite(points[t])):
      out[t] = outputs.to_original(transforms[t], points[t])
  return out


class _OverlayWriter:
  """cv2.VideoWriter of RGB frames: mp4v .mp4, else MJPG .avi."""

  def __init__(self, base: str, fps: float, width: int, height: int):
    import cv2  # pylint: disable=g-import-not-at-top
    self._cv2 = cv2
    for extension, codec in ((".mp4", "mp4v"), (".avi", "MJPG")):
      self.path = base + extension
      self._writer = cv2.VideoWriter(self.path,
                                     cv2.VideoWriter_fourcc(*codec), fps,
                                     (width, height))
      if self._writer.isOpened():
        return
      self._writer.release()
    raise OSError(f"OpenCV could not open a video writer for {base}.mp4 "
                  "(mp4v) or .avi (MJPG)")

  def write(self, frame_rgb: np.ndarray) -> None:
    self._writer.write(self._cv2.cvtColor(frame_rgb, self._cv2.COLOR_RGB2BGR))

  def close(self) -> None:
    self._writer.release()


def _write_overlay(path: str, base: str, fps: float, track: _Track,
                   coefficients: np.ndarray, transforms: np.ndarray,
                   predictor, batch_size: int, mesh_every: int,
                   show_progress: bool) -> List[str]:
  """Pass 2: renders the smoothed faces into every frame; writes meshes."""
  decoder = predictor.decoder
  valid = np.all(np.isfinite(coefficients), axis=1)
  writer = _OverlayWriter(base + "_overlay", fps, track.width, track.height)
  files = [writer.path]
  pending = []  # (frame index, frame)
  triangles = decoder.triangles.numpy()

  def flush():
    rows = [index for index, _ in pending if valid[index]]
    extras = ({} if track.refined_albedo is None else
              {gcn.REFINED_ALBEDO_OUTPUT: np.repeat(
                  track.refined_albedo[None], len(rows), axis=0)})
    recon = (reconstruct.reconstruct(decoder, coefficients[rows],
                                     extras=extras)
             if rows else None)
    for index, frame in pending:
      if not valid[index]:
        writer.write(frame)
        continue
      k = rows.index(index)
      writer.write(overlay.overlay_faces(
          frame, recon.rendered[k:k + 1], recon.mask[k:k + 1],
          [transforms[index]],
          [outputs.to_original(transforms[index], recon.landmarks_2d[k])]))
      if mesh_every and index % mesh_every == 0:
        mesh_path = f"{base}_frame{index:06d}.obj"
        outputs.write_mesh(mesh_path, recon.vertices[k], triangles,
                           recon.colors[k])
        files.append(mesh_path)
    pending.clear()

  try:
    with VideoReader(path) as reader:
      frames = len(coefficients)
      for index, frame in progress(reader.frames(max_frames=frames),
                                   total=frames,
                                   description="overlay (pass 2/2)",
                                   unit="frame", enabled=show_progress):
        pending.append((index, frame))
        if len(pending) >= batch_size:
          flush()
      if pending:
        flush()
  finally:
    writer.close()
  return files


def infer_video(path: str, output_dir: str, predictor, finder,
                smoothing_config: Optional[smoothing.SmoothingConfig] = None,
                batch_size: int = 8, mesh_every: int = 0,
                show_progress: bool = True,
                log: Callable[[str], None] = print) -> VideoResult:
  """Reconstructs the face in every frame of a video (module docstring).

  Args:
    path: a video file OpenCV can decode.
    output_dir: created if missing.
    predictor: a `mgc_tf.inference.reconstructor.Reconstructor`.
    finder: a `mgc_tf.inference.faces.FaceFinder` (largest face per frame).
    smoothing_config: how pose and expression are smoothed (default:
      `SmoothingConfig()`).
    batch_size: crops per model call, frames per render call.
    mesh_every: write the mesh of every N-th frame (0: none).
    show_progress: draw progress bars.
    log: where the summary goes.

  Returns:
    VideoResult.

  Raises:
    BadExampleError: "unreadable video".
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
  if mesh_every < 0:
    raise ValueError(f"mesh_every must be >= 0. Received: {mesh_every}")
  config = smoothing_config or smoothing.SmoothingConfig()
  os.makedirs(output_dir, exist_ok=True)
  stem = os.path.splitext(os.path.basename(path))[0]
  base = os.path.join(output_dir, stem)
  with VideoReader(path) as reader:
    fps = reader.properties.fps
  if fps <= 0:
    log(f"{path}: the container gives no frame rate; the overlay video "
        f"uses {DEFAULT_FPS:g} fps")
    fps = DEFAULT_FPS

  skipped, examples = {}, {}
  track = _find_faces(path, predictor, finder, batch_size, show_progress,
                      skipped, examples)
  for reason, example in examples.items():
    log(f"{path}: {skipped[reason]} frames skipped ({reason}), e.g. {example}")
  valid = track.valid
  decoder = predictor.decoder
  coefficients, transforms = smooth_track(
      track.coefficients, track.transforms, valid, decoder.layout, config)
  pose_raw, crop_landmarks_raw = _decode_all(decoder, track.coefficients,
                                             valid, batch_size)
  pose, crop_landmarks = _decode_all(decoder, coefficients, valid, batch_size)
  expression = decoder.layout.slices()["expression"]
  frames = len(valid)
  arrays = {
      "frame_index": np.arange(frames, dtype=np.int64),
      "time_s": np.arange(frames) / fps,
      "has_face": valid,
      "coefficients_raw": track.coefficients.astype(np.float32),
      "coefficients": coefficients.astype(np.float32),
      "pose_raw": pose_raw.astype(np.float32),
      "pose": pose.astype(np.float32),
      "expression_raw": track.coefficients[:, expression].astype(np.float32),
      "expression": coefficients[:, expression].astype(np.float32),
      "landmarks_2d_raw": _map_to_original(
          track.transforms, crop_landmarks_raw, valid).astype(np.float32),
      "landmarks_2d": _map_to_original(
          transforms, crop_landmarks, valid).astype(np.float32),
      "landmarks_2d_crop": crop_landmarks.astype(np.float32),
      "detected_landmarks": _map_to_original(
          track.transforms, track.detected, valid).astype(np.float32),
      "crop_transform_raw": track.transforms,
      "crop_transform": transforms,
      "box": track.boxes.astype(np.float32),
      "fps": np.float64(fps),
      "image_size_hw": np.array([track.height, track.width], np.int64),
  }
  if track.refined_albedo is not None:
    arrays["albedo_refined"] = track.refined_albedo
  files = [base + ".npz", base + ".json"]
  np.savez(files[0], **arrays)
  if frames:
    files += _write_overlay(path, base, fps, track, coefficients, transforms,
                            predictor, batch_size, mesh_every, show_progress)
  result = VideoResult(path=path, frames=frames,
                       frames_with_face=int(valid.sum()), skipped=skipped,
                       fps=fps, files=files)
  outputs.write_json(files[1], _video_json(result, arrays, config, predictor,
                                           finder))
  log(result.summary())
  return result


def _video_json(result: VideoResult, arrays, config, predictor,
                finder) -> dict:
  frames = []
  for t in range(result.frames):
    has_face = bool(arrays["has_face"][t])
    frames.append({
        "frame": t,
        "time_s": round(float(arrays["time_s"][t]), 6),
        "face": has_face,
        "pose": outputs.pose_json(arrays["pose"][t]) if has_face else None,
        "pose_raw": (outputs.pose_json(arrays["pose_raw"][t]) if has_face
                     else None),
    })
  return {
      "source": result.path,
      "fps": result.fps,
      "frames": result.frames,
      "frames_with_face": result.frames_with_face,
      "skipped": result.skipped,
      "image_size_hw": arrays["image_size_hw"].tolist(),
      "crop_size": CROP_SIZE,
      "smoothing": config.describe(),
      "model": predictor.description,
      "face_finder": finder.describe(),
      "pose_convention": outputs.POSE_CONVENTION,
      "arrays": VIDEO_ARRAYS,
      "files": [os.path.basename(f) for f in result.files],
      "per_frame": frames,
  }
