"""Face crops -> coefficients -> decoded, rendered faces (NumPy out).

The crops are 224 px (the template); they are resized to the model's crop
side S exactly as the training pipeline resizes (bilinear, antialiased) and
the coefficients are decoded and rendered back at 224, so every 2D result is
in 224-crop pixels whatever S is.
"""

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from mgc_tf.facemodel import shading
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.inference.faces import CROP_SIZE
from mgc_tf.models import gcn
from mgc_tf.render import renderer


@dataclasses.dataclass(frozen=True)
class Reconstruction:
  """B reconstructed faces, as NumPy arrays.

  Attributes:
    coefficients: [B, K] float32 predicted coefficients (decoder.layout).
    pose: [B, 6] float32 full pose (default + predicted): (rz, ry, rx)
      radians, (tx, ty, tz) mm; X_cam = R X + t with R = Rx(rx) Ry(ry) Rz(rz).
    rotation: [B, 3, 3] float32 R.
    translation: [B, 3] float32 t, mm.
    vertices: [B, V, 3] float32 camera-space vertices (OpenCV axes: x right,
      y down, z forward), mm.
    colors: [B, V, 3] float32 shaded vertex colours clipped to [0, 1]: the
      refined albedo's when the model has one (the robust method's
      `albedo_refined` output), else the coefficients' albedo's.
    intrinsics: [B, 3, 3] float32 K of the 224 crop, pixels.
    landmarks_3d: [B, 68, 3] float32 camera-space landmarks, mm.
    landmarks_2d: [B, 68, 2] float32 projected landmarks, 224-crop pixels.
    rendered: [B, 224, 224, 3] float32 render in [0, 1], 0 off the face
      (None when not rendered).
    mask: [B, 224, 224, 1] float32, 1 where the face is visible (None when
      not rendered).
    layout: the coefficient layout (for `groups()`).
    extras: extra outputs of the method, name -> [B, ...] (e.g. "depth").
    landmarks_photo: [B, 68, 2] float32 landmarks in the original photo's
      pixels, when the faces were found in a photo (else None).
  """
  coefficients: np.ndarray
  pose: np.ndarray
  rotation: np.ndarray
  translation: np.ndarray
  vertices: np.ndarray
  colors: np.ndarray
  intrinsics: np.ndarray
  landmarks_3d: np.ndarray
  landmarks_2d: np.ndarray
  rendered: Optional[np.ndarray]
  mask: Optional[np.ndarray]
  layout: object = None
  extras: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  landmarks_photo: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self.coefficients)

  def groups(self) -> Dict[str, np.ndarray]:
    """The coefficients by group: identity, albedo, expression, pose,
    lighting -> [B, rank] (pose is the predicted offset; see `pose`)."""
    return {name: self.coefficients[:, s]
            for name, s in self.layout.slices().items()}

  @property
  def depth(self) -> Optional[np.ndarray]:
    """The method's depth map, where it has one (else None)."""
    return self.extras.get("depth")


def predict_outputs(reconstructor, crops: Sequence[np.ndarray],
                    batch_size: int) -> Dict[str, np.ndarray]:
  """Every output of 224 crops, `batch_size` crops per model call.

  Args:
    reconstructor: a `mgc_tf.inference.reconstructor.Reconstructor`.
    crops: B uint8 [224, 224, 3] crops.
    batch_size: crops per call.

  Returns:
    "coefficients" [B, K] float32 and the extra outputs, [B, ...] each.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
  if not len(crops):
    return {"coefficients": np.zeros([0, reconstructor.decoder.layout.size],
                                     np.float32)}
  chunks = []
  for start in range(0, len(crops), batch_size):
    batch = np.stack(crops[start:start + batch_size])
    chunks.append(reconstructor.predict(
        reconstructor_lib.model_inputs(batch, reconstructor.image_size)))
  return {name: np.concatenate([c[name] for c in chunks]).astype(np.float32)
          for name in chunks[0]}


def predict_coefficients(reconstructor, crops: Sequence[np.ndarray],
                         batch_size: int) -> np.ndarray:
  """[B, K] float32 coefficients of 224 crops (see `predict_outputs`)."""
  return predict_outputs(reconstructor, crops, batch_size)["coefficients"]


def reconstruct(decoder, coefficients: np.ndarray, render: bool = True,
                extras: Optional[Dict[str, np.ndarray]] = None,
                crop_transforms: Optional[np.ndarray] = None
                ) -> Reconstruction:
  """Decodes (and renders) coefficients in the 224 crop's camera.

  Args:
    decoder: `mgc_tf.facemodel.decoder.FaceDecoder`.
    coefficients: [B, K] float32, B >= 1.
    render: also rasterize the faces (image and mask).
    extras: extra outputs to carry along, name -> [B, ...].
    crop_transforms: [B, 2, 3] maps from photo to crop pixels; when given,
      the landmarks are also mapped back into the photo.

  Returns:
    Reconstruction.
  """
  coefficients = tf.convert_to_tensor(coefficients, tf.float32)
  if not coefficients.shape[0]:
    raise ValueError("No face to reconstruct (an empty batch).")
  face = decoder.decode(coefficients, image_size=CROP_SIZE)
  colors = face.colors
  refined = (extras or {}).get(gcn.REFINED_ALBEDO_OUTPUT)
  if refined is not None:
    # The method's final texture, lit as the coarse one is.
    colors = shading.sh_shade(tf.convert_to_tensor(refined, tf.float32),
                              face.normals, face.lighting)
  if render:
    output = renderer.render_mesh(face.vertices, colors, decoder.triangles,
                                  face.intrinsics, (CROP_SIZE, CROP_SIZE))
    rendered = np.clip(output.rendered.numpy(), 0.0, 1.0)
    mask = output.mask.numpy()
  else:
    rendered = mask = None
  return Reconstruction(
      coefficients=coefficients.numpy(), pose=face.pose.numpy(),
      rotation=face.rotation.numpy(), translation=face.translation.numpy(),
      vertices=face.vertices.numpy(),
      colors=np.clip(colors.numpy(), 0.0, 1.0),
      intrinsics=face.intrinsics.numpy(),
      landmarks_3d=face.landmarks_3d.numpy(),
      landmarks_2d=face.landmarks_2d.numpy(),
      rendered=rendered, mask=mask, layout=decoder.layout,
      extras=dict(extras or {}),
      landmarks_photo=(None if crop_transforms is None else
                       _to_photo(face.landmarks_2d.numpy(), crop_transforms)))


def _to_photo(points: np.ndarray, transforms: np.ndarray) -> np.ndarray:
  """[B, P, 2] crop pixels -> photo pixels through inverted [B, 2, 3] maps."""
  from mgc_tf.inference import outputs  # pylint: disable=g-import-not-at-top
  return np.stack([outputs.to_original(t, p)
                   for p, t in zip(points, transforms)]).astype(np.float32)
