"""Exports a training run's reconstructor as a SavedModel for TF Serving.

    result = export_saved_model("runs/mgc", "export", model_name="mgc")
    # -> export/mgc/<step>/{saved_model.pb, variables/, assets.extra/}

Layout written (what TF Serving's file-system source expects under a model's
base path `EXPORT_DIR/MODEL_NAME`; it serves the highest numbered version):

    EXPORT_DIR/MODEL_NAME/VERSION/
      saved_model.pb, fingerprint.pb, variables/   the graph and weights
      assets.extra/mgc_tf_export.json              metadata (METADATA_FILE)
      assets.extra/triangles.npy                   int32 [F, 3] mesh faces

VERSION defaults to the checkpoint's training step, so the version says which
weights it holds and exports of later checkpoints supersede earlier ones. An
existing version is never replaced unless `overwrite=True`. The version is
written under a temporary name (which TF Serving ignores: not a number) and
renamed into place when complete, so a server polling the base path never
loads a half-written version.
"""

import dataclasses
import json
import os
import uuid
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

import mgc_tf
from mgc_tf.faces2d import alignment
from mgc_tf.inference import reconstructor as reconstructor_lib
from mgc_tf.serving import signatures as signatures_lib

# Relative to the version directory; read by Reconstructor.from_saved_model.
METADATA_FILE = reconstructor_lib.EXPORT_METADATA
TRIANGLES_FILE = os.path.join("assets.extra", "triangles.npy")
METADATA_FORMAT_VERSION = 1


class ExportError(ValueError):
  """The export cannot be written (bad name/version, version exists)."""


@dataclasses.dataclass
class ExportResult:
  """What `export_saved_model` wrote.

  Attributes:
    path: the version directory EXPORT_DIR/MODEL_NAME/VERSION.
    version: VERSION.
    step: training step of the exported checkpoint.
    checkpoint: the checkpoint the weights came from.
    metadata: the content of METADATA_FILE.
  """
  path: str
  version: int
  step: int
  checkpoint: str
  metadata: dict

  @property
  def signatures(self) -> Dict[str, dict]:
    return self.metadata["signatures"]

  def summary(self) -> str:
    """Several lines for the console: path, step, signatures."""
    lines = [f"Exported {self.path}",
             f"  step {self.step} (checkpoint {self.checkpoint}), "
             f"version {self.version}",
             f"  image_size {self.metadata['image_size']}, "
             f"{self.metadata['num_coefficients']} coefficients, face model "
             f"{self.metadata['face_model_name']!r}"]
    for name, signature in self.signatures.items():
      inputs = ", ".join(f"{key} {spec['dtype']}{spec['shape']}"
                         for key, spec in signature["inputs"].items())
      outputs = ", ".join(f"{key} {spec['dtype']}{spec['shape']}"
                          for key, spec in signature["outputs"].items())
      lines.append(f"  signature {name}: {inputs} -> {outputs}")
    lines.append(f"  metadata {os.path.join(self.path, METADATA_FILE)}, "
                 f"triangles {os.path.join(self.path, TRIANGLES_FILE)}")
    return "\n".join(lines)


def _check_name_and_version(model_name: str, version: Optional[int]) -> None:
  if (not isinstance(model_name, str) or not model_name or
      model_name in (".", "..") or "/" in model_name or "\\" in model_name):
    raise ExportError("model_name must be a plain directory name (TF "
                      f"Serving's model name); got {model_name!r}.")
  if version is not None and (isinstance(version, bool) or
                              not isinstance(version, int) or version < 0):
    raise ExportError("version must be an integer >= 0 (TF Serving reads "
                      f"version directories as numbers); got {version!r}.")


def existing_versions(model_path: str):
  """Sorted version numbers present under EXPORT_DIR/MODEL_NAME."""
  if not tf.io.gfile.isdir(model_path):
    return []
  return sorted(int(name.rstrip("/")) for name in
                tf.io.gfile.listdir(model_path) if name.rstrip("/").isdigit())


def checkpoint_step(checkpoint: str) -> Optional[int]:
  """The training step stored in a checkpoint, without building the model.

  Reads the `step` variable that training (and `Reconstructor.from_run`)
  keeps beside the model in `tf.train.Checkpoint(model=..., step=...)`;
  None when the checkpoint cannot be read or has no such variable.
  """
  try:
    reader = tf.train.load_checkpoint(checkpoint)
    return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
  except (tf.errors.OpError, ValueError, KeyError):
    return None


def _check_free(model_path: str, version: int) -> None:
  """Raises ExportError if MODEL_PATH/VERSION exists."""
  target = os.path.join(model_path, str(version))
  if tf.io.gfile.exists(target):
    versions = existing_versions(model_path)
    raise ExportError(
        f"{target} already exists (versions there: {versions}). Pass "
        f"--overwrite to replace it, or --version={max(versions) + 1} to add "
        "a new version.")


def build_metadata(restored: reconstructor_lib.Reconstructor,
                   module: signatures_lib.ReconstructionModule,
                   functions, model_dir: str, model_name: str,
                   version: int) -> dict:
  """The content of METADATA_FILE (see docs/serving.md)."""
  decoder = restored.decoder
  face_model = decoder.face_model
  return {
      "format": "mgc_tf_export",
      "format_version": METADATA_FORMAT_VERSION,
      "model_name": model_name,
      "version": version,
      # Read by Reconstructor.from_saved_model.
      "image_size": module.image_size,
      "num_coefficients": module.num_coefficients,
      "face_model": restored.model_description.face_model_path,
      "face_model_fingerprint": face_model.fingerprint(),
      "method": restored.model_description.method,
      "extra_outputs": {
          name: restored.model_description.outputs[name]["description"]
          for name in restored.outputs},
      "face_model_name": face_model.name,
      "crop_size": alignment.TEMPLATE_SIZE,
      "coefficient_layout": {
          name: [s.start, s.stop]
          for name, s in decoder.layout.slices().items()},
      "num_vertices": module.num_vertices,
      "num_triangles": int(face_model.triangles.shape[0]),
      "triangles_file": os.path.basename(TRIANGLES_FILE),
      "landmark_indices": [int(i) for i in face_model.landmark_indices],
      "camera": {
          "focal_length_px": float(face_model.focal_length),
          "for_crop_size": int(face_model.image_size),
          "principal_point": "crop centre (H / 2, H / 2)",
          "axes": "OpenCV: x right, y down, z forward; mm",
          "scales_with_crop": True,
      },
      "backbone": restored.model_description.backbone,
      "step": restored.step,
      "checkpoint": restored.checkpoint_path,
      "model_dir": model_dir,
      "mgc_tf_version": mgc_tf.__version__,
      "tensorflow_version": tf.__version__,
      "signatures": signatures_lib.describe(
          functions, extra_units={
              name: spec["description"] for name, spec in
              restored.model_description.outputs.items()}),
  }


def export_saved_model(model_dir: str, export_dir: str,
                       model_name: str = "mgc",
                       version: Optional[int] = None,
                       checkpoint: Optional[str] = None,
                       overwrite: bool = False) -> ExportResult:
  """Writes EXPORT_DIR/MODEL_NAME/VERSION from a training run.

  Args:
    model_dir: a training run's directory (model.json + checkpoints).
    export_dir: the parent of the model's base path.
    model_name: TF Serving's model name (the base path's last component).
    version: the version number; default: the checkpoint's training step.
    checkpoint: a checkpoint prefix; default: the latest in model_dir.
    overwrite: replace an existing version directory.

  Returns:
    An `ExportResult`.

  Raises:
    reconstructor_lib.TrainedModelError: no model.json or no usable
      checkpoint.
    ExportError: a bad name/version, or the version exists and not
      `overwrite`.
  """
  _check_name_and_version(model_name, version)
  model_path = os.path.join(export_dir, model_name)
  # Refuse before the (slow) model build when the version is known already.
  if not overwrite:
    known = version
    if known is None:
      known = checkpoint_step(checkpoint or tf.train.latest_checkpoint(
          model_dir) or "")
    if known is not None:
      _check_free(model_path, known)
  restored = reconstructor_lib.Reconstructor.from_run(model_dir, checkpoint)
  version = restored.step if version is None else version
  target = os.path.join(model_path, str(version))
  if not overwrite:
    _check_free(model_path, version)

  module = signatures_lib.ReconstructionModule(
      restored.model, restored.decoder.face_model,
      extra_outputs=restored.output_networks)
  functions = module.signatures()
  metadata = build_metadata(restored, module, functions, model_dir,
                            model_name, version)

  tf.io.gfile.makedirs(model_path)
  # Not a number, so TF Serving ignores it while it is being written.
  staging = os.path.join(model_path, f".tmp-{version}-{uuid.uuid4().hex}")
  try:
    # Serving needs no gradients; saving custom ones would fail on the GCN
    # refiners' product (its gradient uses a CSR handle made in the graph).
    tf.saved_model.save(module, staging, signatures=functions,
                        options=tf.saved_model.SaveOptions(
                            experimental_custom_gradients=False))
    extra = os.path.join(staging, "assets.extra")
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(staging, METADATA_FILE), "w") as f:
      f.write(json.dumps(metadata, indent=2) + "\n")
    with tf.io.gfile.GFile(os.path.join(staging, TRIANGLES_FILE), "wb") as f:
      np.save(f, np.asarray(restored.decoder.face_model.triangles, np.int32))
    _move_into_place(staging, target, overwrite)
  finally:
    if tf.io.gfile.exists(staging):
      tf.io.gfile.rmtree(staging)
  return ExportResult(path=target, version=version, step=restored.step,
                      checkpoint=restored.checkpoint_path, metadata=metadata)


def _move_into_place(staging: str, target: str, overwrite: bool) -> None:
  """Renames staging -> target; with overwrite, the old target goes first."""
  if not tf.io.gfile.exists(target):
    tf.io.gfile.rename(staging, target)
    return
  if not overwrite:  # appeared while we were writing
    raise ExportError(f"{target} appeared during the export; not replaced.")
  retired = f"{staging}.old"
  tf.io.gfile.rename(target, retired)
  tf.io.gfile.rename(staging, target)
  tf.io.gfile.rmtree(retired)
