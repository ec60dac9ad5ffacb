"""The coefficient layout: one named table of slices into the coefficient vector.

For the BFM ranks the vector has 257 entries:
  [identity 80 | albedo 80 | expression 64 | pose 6 | SH lighting 27]
with pose = (rz, ry, rx, tx, ty, tz) in radians and millimetres, added to the
face model's default pose. The ranks come from the face model, so the same code
serves models of other ranks (the embedded synthetic one has the BFM ranks).
"""

import dataclasses
from typing import Dict

import tensorflow as tf

from mgc_tf.facemodel import shading

POSE_SIZE = 6


@dataclasses.dataclass(frozen=True)
class CoefficientLayout:
  """Sizes of the coefficient groups, in the order they are concatenated."""
  id_rank: int = 80
  albedo_rank: int = 80
  exp_rank: int = 64
  pose_size: int = POSE_SIZE
  light_size: int = shading.SH_COEFFS

  @classmethod
  def from_face_model(cls, face_model) -> "CoefficientLayout":
    return cls(id_rank=face_model.id_rank, albedo_rank=face_model.albedo_rank,
               exp_rank=face_model.exp_rank)

  @property
  def names(self):
    return ("identity", "albedo", "expression", "pose", "lighting")

  @property
  def sizes(self):
    return (self.id_rank, self.albedo_rank, self.exp_rank, self.pose_size,
            self.light_size)

  @property
  def size(self) -> int:
    return sum(self.sizes)

  def slices(self) -> Dict[str, slice]:
    """Name -> slice into the last axis of a coefficient tensor."""
    out, start = {}, 0
    for name, size in zip(self.names, self.sizes):
      out[name] = slice(start, start + size)
      start += size
    return out

  def split(self, coefficients: tf.Tensor) -> Dict[str, tf.Tensor]:
    """[..., K] coefficients -> dict of [..., k_group] tensors by group name."""
    coefficients = tf.convert_to_tensor(coefficients)
    if coefficients.shape[-1] != self.size:
      raise ValueError(
          f"Expected {self.size} coefficients ({dict(zip(self.names, self.sizes))}"
          f"). Received: coefficients.shape={coefficients.shape}")
    return {name: coefficients[..., s] for name, s in self.slices().items()}

  def join(self, groups: Dict[str, tf.Tensor]) -> tf.Tensor:
    """Inverse of `split`; missing groups are zeros shaped like the others."""
    reference = next(iter(groups.values()))
    batch_shape = tf.shape(reference)[:-1]
    parts = []
    for name, size in zip(self.names, self.sizes):
      if name in groups:
        parts.append(tf.cast(groups[name], reference.dtype))
      else:
        parts.append(tf.zeros(tf.concat([batch_shape, [size]], 0),
                              reference.dtype))
    return tf.concat(parts, axis=-1)
