"""`Reconstructor`: a trained model as one object, the front door for Python users.

    import mgc_tf
    model = mgc_tf.Reconstructor.from_run("runs/quickstart")    # model.json + checkpoint
    model = mgc_tf.Reconstructor.from_saved_model("export/mgc/300")
    result = model.reconstruct(crops)               # aligned crops [N, H, H, 3]
    result = model.reconstruct(photo, find_faces=True)   # needs the preprocess extra
    result.vertices, result.landmarks_2d, result.groups()["identity"]

From a run it reads `model.json` (written by the trainer; see
`mgc_tf.models.description`), rebuilds every network the method declared
for inference and restores the checkpoint; it never reads the training
configuration. From an exported SavedModel it calls the `predict_images`
signature. Export, evaluation, inference and the trainer's periodic
evaluation all hold a `Reconstructor`; both sources give the same
coefficients (the export test pins them within 1e-5).
"""

import json
import os
from typing import Callable, Dict, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from mgc_tf.facemodel import loaders
from mgc_tf.models import description as description_lib
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.models import registry
# Registers the "reconstructor" network builder.
from mgc_tf.models import reconstructor as _reconstructor  # pylint: disable=unused-import

# Written by mgc_tf.export beside saved_model.pb; TF Serving ignores it.
EXPORT_METADATA = os.path.join("assets.extra", "mgc_tf_export.json")
# The signature taking float images [N, H, W, 3] in [0, 1].
IMAGES_SIGNATURE = "predict_images"
RECONSTRUCTOR = "reconstructor"
# Runs written before model.json existed hold only this.
_LEGACY_CONFIG = "config.json"


class TrainedModelError(ValueError):
  """A run or export that cannot be loaded; the message says what to do."""


def model_inputs(images, image_size: int) -> np.ndarray:
  """[N, H, W, 3] uint8 (or float in [0, 1]) -> [N, S, S, 3] float32 in [0, 1].

  Resized with antialiasing, as the training pipeline resizes crops; no
  resize when H = W = S.
  """
  images = tf.image.convert_image_dtype(tf.convert_to_tensor(images),
                                        tf.float32)
  if images.shape[1] != image_size or images.shape[2] != image_size:
    images = tf.image.resize(images, [image_size, image_size], antialias=True)
  return tf.clip_by_value(images, 0.0, 1.0).numpy()


class Reconstructor:
  """Images of faces -> coefficients, meshes, landmarks (and extra outputs).

  Build one with `from_run`, `from_saved_model` or `from_networks`.

  Attributes:
    image_size: S, the side of the square crop the networks take.
    decoder: `FaceDecoder` of the model's face model.
    description: one line naming the source, for logs and reports.
    outputs: names of the extra outputs (beside the coefficients).
    step: the training step of the weights (None when unknown).
    checkpoint_path: the checkpoint the weights came from (runs only).
    model: the Keras reconstructor (None for a SavedModel).
    model_description: the run's `ModelDescription` (runs only).
    output_networks: extra output name -> the network (or composite) that
      gives it from the crops (runs and in-memory models only).
  """

  def __init__(self, predict: Callable[[tf.Tensor], Dict[str, tf.Tensor]],
               decoder: face_decoder.FaceDecoder, image_size: int,
               description: str, outputs: Sequence[str] = (),
               step: Optional[int] = None, checkpoint_path: str = "",
               model=None, model_description=None, networks=None,
               output_networks=None):
    self._predict = predict
    self.decoder = decoder
    self.image_size = int(image_size)
    self.description = description
    self.outputs = tuple(outputs)
    self.step = step
    self.checkpoint_path = checkpoint_path
    self.model = model
    self.model_description = model_description
    self.networks = dict(networks or {})
    self.output_networks = dict(output_networks or {})

  # ------------------------------------------------------------ builders

  @classmethod
  def from_networks(cls, networks: Dict[str, object], decoder,
                    image_size: int, outputs: Optional[Dict[str, str]] = None,
                    description: str = "model in memory",
                    inference: Optional[registry.NetworkSpec] = None,
                    **kwargs) -> "Reconstructor":
    """Keras networks in memory (e.g. the trainer's), run in float32.

    Args:
      networks: name -> keras.Model taking [N, S, S, 3]; "reconstructor"
        gives the coefficients unless `inference` says otherwise.
      decoder: its `FaceDecoder`.
      image_size: S.
      outputs: extra output name -> the name of the network that gives it,
        or a `registry.NetworkSpec` of a builder that takes `networks=` and
        `decoder=` (an output computed over several networks).
      description: one line for logs.
      inference: the method's `inference_spec()` (model.json's
        "inference"): a builder of images -> coefficients over `networks`
        and `decoder`; None: the reconstructor.
    """
    def composite(spec):
      try:
        return registry.build(spec, networks=networks, decoder=decoder)
      except KeyError as error:
        raise TrainedModelError(error.args[0]) from error

    model = networks[RECONSTRUCTOR]
    if inference is not None:
      model = composite(inference)
    output_networks = {
        name: (networks[source] if isinstance(source, str)
               else composite(source))
        for name, source in (outputs or {}).items()}
    size = int(image_size)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3],
                                                tf.float32)])
    def predict(images):
      # float32 also when the model was built under mixed precision.
      out = {"coefficients": tf.cast(model(images, training=False),
                                     tf.float32)}
      for name, network in output_networks.items():
        out[name] = tf.cast(registry.call_output(
            network, images, out["coefficients"]), tf.float32)
      return out

    return cls(predict, decoder, size, description,
               outputs=list(output_networks), model=model, networks=networks,
               output_networks=output_networks, **kwargs)

  @classmethod
  def from_run(cls, model_dir: str, checkpoint: Optional[str] = None,
               face_model: Optional[str] = None) -> "Reconstructor":
    """A training run's latest (or named) checkpoint.

    Args:
      model_dir: the run directory (model.json + checkpoints).
      checkpoint: a checkpoint prefix (e.g. model_dir/ckpt-300); default:
        the latest in model_dir.
      face_model: the face-model file, when it has moved since training
        (its fingerprint must match model.json's).

    Raises:
      TrainedModelError: no model.json, no checkpoint, another face model,
        or a checkpoint that does not hold the networks' weights.
    """
    description = _read_description(model_dir)
    if checkpoint and not tf.io.gfile.exists(checkpoint + ".index"):
      # Before the restore, whose NotFoundError is a long traceback.
      found = tf.train.get_checkpoint_state(model_dir)
      names = [os.path.basename(path) for path in
               (found.all_model_checkpoint_paths if found else [])]
      raise TrainedModelError(
          f"checkpoint {checkpoint} not found (no {checkpoint}.index); "
          f"pass a prefix such as {os.path.join(model_dir, 'ckpt-N')} "
          f"(checkpoints in {model_dir}: {', '.join(names) or 'none'})")
    checkpoint = checkpoint or tf.train.latest_checkpoint(model_dir)
    if not checkpoint:
      raise TrainedModelError(
          f"No checkpoint in {model_dir}: train first (it saves every "
          "--checkpoint_every steps and at the end) or pass a checkpoint "
          "path.")
    decoder = face_decoder.FaceDecoder(_load_face_model(
        face_model or description.face_model_path, description))
    if decoder.layout.size != description.coefficients["size"]:
      raise TrainedModelError(
          f"{model_dir} predicts {description.coefficients['size']} "
          f"coefficients but the face model has {decoder.layout.size}.")
    outputs = {name: (registry.NetworkSpec.from_dict(spec["builder"])
                      if spec.get("builder") else spec["network"])
               for name, spec in description.outputs.items()}
    needed = [RECONSTRUCTOR] + [
        n for n in dict.fromkeys(o for o in outputs.values()
                                 if isinstance(o, str))
        if n != RECONSTRUCTOR]
    if description.inference is not None or not all(
        isinstance(o, str) for o in outputs.values()):
      # Its builder may read any of the networks.
      needed += [n for n in description.networks if n not in needed]
    networks = {}
    for name in needed:
      spec = description.networks[name]
      # The weights come from the checkpoint.
      overrides = ({"backbone_weights": "none"}
                   if "backbone_weights" in spec.kwargs else {})
      try:
        networks[name] = registry.build(spec, **overrides)
      except KeyError as error:
        raise TrainedModelError(f"{model_dir}: {error.args[0]}") from error
    step = tf.Variable(0, dtype=tf.int64, name="step")
    tracked = {"network_" + name: net for name, net in networks.items()
               if name != RECONSTRUCTOR}
    status = tf.train.Checkpoint(model=networks[RECONSTRUCTOR], step=step,
                                 **tracked).restore(checkpoint)
    try:
      status.expect_partial().assert_existing_objects_matched()
    except AssertionError as error:
      raise TrainedModelError(
          f"{checkpoint} does not hold the weights of the networks "
          f"{needed} that {model_dir}/model.json describes ({error})."
      ) from error
    return cls.from_networks(
        networks, decoder, description.image_size, outputs=outputs,
        description=(f"checkpoint {checkpoint} (step {int(step.numpy())})"),
        step=int(step.numpy()), checkpoint_path=checkpoint,
        model_description=description, inference=description.inference)

  @classmethod
  def from_saved_model(cls, path: str, face_model: Optional[str] = None
                       ) -> "Reconstructor":
    """An exported version directory (`python -m mgc_tf.export`).

    Args:
      path: EXPORT_DIR/MODEL_NAME/VERSION.
      face_model: the face-model file, when the export's record of it is
        not where it was.
    """
    metadata = read_export_metadata(path)
    decoder = face_decoder.FaceDecoder(loaders.load_face_model(
        face_model or metadata.get("face_model") or
        loaders.packaged_name_of(metadata.get("face_model_name"))))
    if decoder.layout.size != int(metadata["num_coefficients"]):
      raise TrainedModelError(
          f"{path} predicts {metadata['num_coefficients']} coefficients but "
          f"the face model has {decoder.layout.size}: pass the --face_model "
          "the model was trained with.")
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures[IMAGES_SIGNATURE]
    outputs = list(metadata.get("extra_outputs", {}))

    def predict(images):
      out = signature(images=images)
      return {name: out[name] for name in ["coefficients"] + outputs}

    reconstructor = cls(predict, decoder, int(metadata["image_size"]),
                        f"SavedModel {path}", outputs=outputs,
                        step=metadata.get("step"))
    reconstructor.saved_model = loaded  # keeps the signature's variables
    return reconstructor

  @classmethod
  def from_args(cls, model_dir: Optional[str] = None,
                saved_model: Optional[str] = None,
                checkpoint: Optional[str] = None,
                face_model: Optional[str] = None) -> "Reconstructor":
    """Exactly one of model_dir / saved_model (the entry points' flags)."""
    if bool(model_dir) == bool(saved_model):
      raise TrainedModelError(
          "Pass exactly one of --model_dir (a training run) or "
          "--saved_model (an exported version directory).")
    if model_dir:
      return cls.from_run(model_dir, checkpoint, face_model)
    return cls.from_saved_model(saved_model, face_model)

  # ------------------------------------------------------------ predicting

  @property
  def layout(self):
    return self.decoder.layout

  def predict(self, images) -> Dict[str, np.ndarray]:
    """Raw outputs of crops already at the model's size.

    Args:
      images: [N, S, S, 3] float32 RGB in [0, 1].

    Returns:
      "coefficients" [N, K] float32, plus every extra output.
    """
    out = self._predict(tf.convert_to_tensor(images, tf.float32))
    return {name: np.asarray(value) for name, value in out.items()}

  def coefficients(self, images) -> np.ndarray:
    """images [N, S, S, 3] float32 RGB in [0, 1] -> [N, K] float32."""
    return self.predict(images)["coefficients"]

  def reconstruct(self, images, find_faces: bool = False,
                  render: bool = False, batch_size: int = 32):
    """Faces of aligned crops, or of a photo whose faces are found first.

    Args:
      images: aligned square crops [N, H, H, 3] (or one [H, H, 3]), uint8
        or float in [0, 1], any H (resized to the model's size); with
        `find_faces`, one photo: [H, W, 3] uint8 RGB or an image path.
      find_faces: detect, landmark and align every face of the photo first
        (the `preprocess` extra); the result then also holds landmarks in
        photo pixels.
      render: also rasterize each face over its crop (rendered, mask).
      batch_size: crops per network call.

    Returns:
      `mgc_tf.inference.reconstruct.Reconstruction` of the N faces (2D
      results in 224-crop pixels; `landmarks_photo` with find_faces).
    """
    # pylint: disable=g-import-not-at-top
    from mgc_tf.inference import reconstruct as reconstruct_lib
    crops, transforms = _crops_of(images, find_faces)
    predictions = reconstruct_lib.predict_outputs(self, crops, batch_size)
    return reconstruct_lib.reconstruct(
        self.decoder, predictions.pop("coefficients"), render=render,
        extras=predictions, crop_transforms=transforms)


def _crops_of(images, find_faces: bool):
  """(list of 224 uint8 crops, [N, 2, 3] transforms or None)."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.inference import faces
  if find_faces:
    if isinstance(images, (str, os.PathLike)):
      from mgc_tf.io.bad_input import read_image_rgb
      images = read_image_rgb(os.fspath(images))
    photo = np.asarray(images)
    if photo.ndim != 3:
      raise ValueError("find_faces=True takes one photo [H, W, 3] (or its "
                       f"path). Received: shape {photo.shape}")
    if photo.dtype != np.uint8:
      photo = np.clip(np.round(photo * 255.0), 0, 255).astype(np.uint8)
    found = faces.make_face_finder(aligned=False).find(photo, all_faces=True)
    return ([c.image for c in found],
            np.stack([c.transform for c in found]) if found else
            np.zeros([0, 2, 3]))
  array = np.asarray(images)
  if array.ndim == 3:
    array = array[None]
  if array.ndim != 4 or array.shape[-1] != 3:
    raise ValueError("reconstruct takes aligned crops [N, H, H, 3] or one "
                     f"[H, H, 3]. Received: shape {array.shape}")
  if array.dtype != np.uint8:
    array = np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
  return [faces.aligned_crop(image).image for image in array], None


def read_export_metadata(saved_model_dir: str) -> dict:
  """The metadata mgc_tf.export wrote beside a SavedModel."""
  path = os.path.join(saved_model_dir, EXPORT_METADATA)
  if not tf.io.gfile.exists(path):
    raise TrainedModelError(
        f"{path} does not exist: --saved_model must be a version directory "
        "written by python -m mgc_tf.export (EXPORT_DIR/MODEL_NAME/VERSION).")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _read_description(model_dir: str) -> description_lib.ModelDescription:
  """model.json, or the description of a run written before it existed."""
  path = os.path.join(model_dir, description_lib.FILE_NAME)
  legacy = os.path.join(model_dir, _LEGACY_CONFIG)
  if not tf.io.gfile.exists(path) and tf.io.gfile.exists(legacy):
    return _legacy_description(legacy)
  try:
    return description_lib.read(model_dir)
  except description_lib.ModelDescriptionError as error:
    raise TrainedModelError(str(error)) from error


def _legacy_description(config_path: str) -> description_lib.ModelDescription:
  """An MGCNet run's config.json (before model.json) as a description."""
  from mgc_tf.models import reconstructor as reconstructor_lib  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(config_path) as f:
    config = json.load(f)
  # These runs predate the ICT default: no path meant the synthetic model.
  face = loaders.load_face_model(config.get("face_model") or
                                 "embedded-synthetic-v1")
  layout = face_decoder.FaceDecoder(face).layout
  spec = reconstructor_lib.reconstructor_spec(
      layout, backbone=config["backbone"], image_size=config["image_size"])
  return description_lib.ModelDescription(
      method="mgcnet", image_size=int(config["image_size"]),
      face_model_path=config.get("face_model"), face_model_name=face.name,
      face_model_fingerprint=face.fingerprint(),
      coefficients=description_lib.layout_sizes(layout),
      networks={RECONSTRUCTOR: spec})


def _load_face_model(path: Optional[str],
                     description: description_lib.ModelDescription):
  # No path: a packaged model, named in the record (the default may have
  # changed since the run was trained).
  model = loaders.load_face_model(
      path or loaders.packaged_name_of(description.face_model_name))
  if model.fingerprint() != description.face_model_fingerprint:
    raise TrainedModelError(
        f"The face model {path or '(embedded)'} ({model.name}, fingerprint "
        f"{model.fingerprint()}) is not the one the run was trained with "
        f"({description.face_model_name}, fingerprint "
        f"{description.face_model_fingerprint}): pass --face_model with the "
        "file the run used.")
  return model


def save_run(model_dir: str, networks: Dict[str, object],
             specs: Dict[str, registry.NetworkSpec], face_model,
             image_size: int, step: int = 0, method: str = "mgcnet",
             face_model_path: Optional[str] = None,
             inference: Optional[registry.NetworkSpec] = None,
             outputs: Optional[Dict[str, dict]] = None) -> str:
  """Writes a run directory `from_run` reads: model.json + ckpt-<step>.

  For networks trained outside the trainer (a test, a conversion script);
  the trainer writes its own. `inference` is the method's
  `inference_spec()`, `outputs` its `outputs()` as model.json entries
  (`OutputSpec.to_dict()`). Returns the checkpoint path.
  """
  import mgc_tf  # pylint: disable=g-import-not-at-top
  decoder = face_decoder.FaceDecoder(face_model)
  description_lib.write(model_dir, description_lib.ModelDescription(
      method=method, image_size=int(image_size),
      face_model_path=face_model_path, face_model_name=face_model.name,
      face_model_fingerprint=face_model.fingerprint(),
      coefficients=description_lib.layout_sizes(decoder.layout),
      networks=dict(specs), mgc_tf_version=mgc_tf.__version__,
      inference=inference, outputs=dict(outputs or {})))
  step_variable = tf.Variable(step, dtype=tf.int64, name="step")
  tracked = {"network_" + name: net for name, net in networks.items()
             if name != RECONSTRUCTOR}
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=networks[RECONSTRUCTOR], step=step_variable,
                          **tracked), model_dir, max_to_keep=2)
  return manager.save(checkpoint_number=step)
