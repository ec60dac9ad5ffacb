"""`model.json`: what a trained model is, written beside its checkpoints.

The trainer writes it when a run starts; `mgc_tf.Reconstructor.from_run`
reads it (and nothing of the training configuration) to rebuild the
networks, load the face model and restore the weights:

    {"format": 1, "method": "mgcnet", "image_size": 112,
     "face_model": {"path": null, "name": "...", "fingerprint": "..."},
     "coefficients": {"identity": 80, ..., "size": 257},
     "networks": {"reconstructor": {"builder": "reconstructor",
                                    "kwargs": {...}}},
     "outputs": {"depth": {"network": "depth", "description": "..."}},
     "inference": {"builder": "pgn_solved_pose", "kwargs": {...}},
     "mgc_tf_version": "0.1.0"}

("inference" only for a method whose coefficients at inference are not the
reconstructor's output: `Method.inference_spec`.)
"""

import dataclasses
import json
import os
from typing import Any, Dict, Optional

from mgc_tf.models import registry

FILE_NAME = "model.json"
FORMAT = 1


class ModelDescriptionError(ValueError):
  """A model.json that is missing, unreadable or of another format."""


@dataclasses.dataclass(frozen=True)
class ModelDescription:
  """The model-level facts of a run.

  Attributes:
    method: the method that trained it (`--method`).
    image_size: S, the crop side the networks take, pixels.
    face_model_path: the face-model file (None: the embedded model).
    face_model_name, face_model_fingerprint: which face model it was
      (`FaceModel.fingerprint()`), checked when the model is restored.
    coefficients: rank per group and "size" (the coefficient layout).
    networks: name -> `NetworkSpec` of every network a checkpoint holds;
      "reconstructor" is always there.
    outputs: extra inference outputs, name -> {"network", "description"}
      and, for an output computed over several networks, "builder" (a
      `NetworkSpec` dict; `methods.base.OutputSpec`).
    mgc_tf_version: the version that wrote it.
    inference: how inference computes the coefficients from the networks
      (`Method.inference_spec`, e.g. the PGN's pose solve); None: the
      reconstructor's output. Written only when set, so the model.json of
      every other method is unchanged.
  """
  method: str
  image_size: int
  face_model_path: Optional[str]
  face_model_name: str
  face_model_fingerprint: str
  coefficients: Dict[str, int]
  networks: Dict[str, registry.NetworkSpec]
  outputs: Dict[str, Dict[str, str]] = dataclasses.field(default_factory=dict)
  mgc_tf_version: str = ""
  inference: Optional[registry.NetworkSpec] = None

  @property
  def backbone(self) -> str:
    return self.networks["reconstructor"].kwargs.get("backbone", "")

  def to_json(self) -> str:
    extra = ({} if self.inference is None else
             {"inference": self.inference.to_dict()})
    return json.dumps({
        **extra, "format": FORMAT, "method": self.method,
        "image_size": self.image_size,
        "face_model": {"path": self.face_model_path,
                       "name": self.face_model_name,
                       "fingerprint": self.face_model_fingerprint},
        "coefficients": dict(self.coefficients),
        "networks": {k: v.to_dict() for k, v in self.networks.items()},
        "outputs": {k: dict(v) for k, v in self.outputs.items()},
        "mgc_tf_version": self.mgc_tf_version}, indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str, source: str = FILE_NAME
                ) -> "ModelDescription":
    try:
      values = json.loads(text)
      if values.get("format") != FORMAT:
        raise ModelDescriptionError(
            f"{source} has format {values.get('format')!r}; this mgc_tf "
            f"reads format {FORMAT}.")
      face = values["face_model"]
      return cls(
          method=values["method"], image_size=int(values["image_size"]),
          face_model_path=face.get("path"), face_model_name=face["name"],
          face_model_fingerprint=face["fingerprint"],
          coefficients={k: int(v) for k, v in values["coefficients"].items()},
          networks={k: registry.NetworkSpec.from_dict(v)
                    for k, v in values["networks"].items()},
          outputs=values.get("outputs", {}),
          mgc_tf_version=values.get("mgc_tf_version", ""),
          inference=(registry.NetworkSpec.from_dict(values["inference"])
                     if values.get("inference") else None))
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
      if isinstance(error, ModelDescriptionError):
        raise
      raise ModelDescriptionError(
          f"{source} is not a valid model description ({error!r}).") from error


def layout_sizes(layout) -> Dict[str, int]:
  """The `coefficients` entry of a `CoefficientLayout`."""
  sizes = {name: s.stop - s.start for name, s in layout.slices().items()}
  sizes["size"] = int(layout.size)
  return sizes


def write(model_dir: str, description: ModelDescription) -> str:
  """Writes model_dir/model.json (atomically: temp file, then rename)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.io.gfile.makedirs(model_dir)
  path = os.path.join(model_dir, FILE_NAME)
  temporary = path + ".tmp"
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write(description.to_json())
  tf.io.gfile.rename(temporary, path, overwrite=True)
  return path


def read(model_dir: str) -> ModelDescription:
  """model_dir/model.json, or ModelDescriptionError saying what to do."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(model_dir, FILE_NAME)
  if not tf.io.gfile.exists(path):
    raise ModelDescriptionError(
        f"{path} does not exist: --model_dir must be the directory a "
        "training run (python -m mgc_tf.train --model_dir=...) wrote.")
  with tf.io.gfile.GFile(path) as f:
    return ModelDescription.from_json(f.read(), source=path)
