"""The method interface: what one paper's way of training owns.

A method (DESIGN section 9) owns exactly three things:

1. its networks: `network_specs()` names every Keras model it trains (always
   "reconstructor"; extra heads or networks beside it), each built by a
   registered builder of `mgc_tf.models.registry` from plain keyword
   arguments, so a trained model can be rebuilt from `model.json` alone;
2. its objective: `objective(networks, batch, stage)` runs the forward pass
   and returns the total and every named term (pure loss functions from
   `mgc_tf.losses`), gated per sample and divided by the global batch size,
   so that summing over replicas gives the global mean;
3. its data needs and stages: `required_features` (keys every batch must
   hold), `accepted_sources` (the kinds of data it trains on) and `stages()`
   (which networks train, for how many steps, with which terms on).

The trainer (`mgc_tf.training`) knows no method by name: the entry point
builds one from `--method=NAME` and its config section (a frozen dataclass,
`config_class`) and hands it over.
"""

import abc
import dataclasses
from typing import (Any, ClassVar, Dict, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple)

import tensorflow as tf

from mgc_tf.facemodel import decoder as decoder_lib
from mgc_tf.losses import landmark as landmark_lib
from mgc_tf.models import reconstructor as reconstructor_lib
from mgc_tf.models import registry

RECONSTRUCTOR = "reconstructor"


@dataclasses.dataclass(frozen=True)
class Stage:
  """One training stage.

  Attributes:
    name: shown in logs.
    steps: steps in this stage; 0 means "until max_steps" (last stage only).
    networks: names of the networks whose variables train; None: all.
    terms: names of the objective terms that are on; None: all.
    frozen: "network/layer" paths of nested layers (direct layers of a
      network, e.g. "reconstructor/resnet18_backbone") whose variables stay
      fixed although their network trains; the objective should run them in
      inference mode (their batch-norm statistics stay too).
  """
  name: str
  steps: int = 0
  networks: Optional[Tuple[str, ...]] = None
  terms: Optional[Tuple[str, ...]] = None
  frozen: Tuple[str, ...] = ()

  def term_on(self, name: str) -> bool:
    return self.terms is None or name in self.terms


#: The stage of a method that trains everything at once.
SINGLE_STAGE = (Stage("train"),)


class Objective(NamedTuple):
  """What `Method.objective` returns for one replica's batch.

  Attributes:
    total: scalar float32, the weighted sum of the terms that are on, summed
      over the local batch and divided by the global batch size.
    terms: name -> scalar, each term unweighted, summed over the local batch
      and divided by the global batch size (logged as loss/NAME).
    details: method-specific tensors for image summaries (may be None).
    coefficients: [B, N, K] float32, the coefficients the reconstructor
      predicted for the batch's views, for add-on terms
      (`mgc_tf.methods.addons`) to read without a second forward pass;
      None if the method gives none (then no add-on can be used with it).
  """
  total: tf.Tensor
  terms: Dict[str, tf.Tensor]
  details: Any = None
  coefficients: Optional[tf.Tensor] = None


@dataclasses.dataclass(frozen=True)
class OutputSpec:
  """An extra output a trained model gives at inference.

  Attributes:
    network: the network (in `network_specs()`) whose output it is; the
      network takes the same [N, S, S, 3] crops as the reconstructor.
      Empty when `builder` is given.
    description: one line with shape and units, for model.json and docs.
    builder: an output computed over several networks and the face model:
      a registered builder that also takes `networks=` and `decoder=` and
      returns crops [N, S, S, 3] -> the output (like `inference_spec`).
  """
  network: str
  description: str
  builder: Optional[registry.NetworkSpec] = None

  def source(self):
    """What `Reconstructor.from_networks(outputs=...)` takes for it: the
    network's name, or the builder's spec."""
    return self.builder if self.builder is not None else self.network

  def to_dict(self) -> Dict[str, Any]:
    """model.json's entry ("builder" only when set)."""
    out = {"network": self.network, "description": self.description}
    if self.builder is not None:
      out["builder"] = self.builder.to_dict()
    return out


@dataclasses.dataclass(frozen=True)
class MethodSetup:
  """What the trainer gives every method, whatever it is.

  Attributes:
    decoder: the face model's `FaceDecoder` (layout, camera, decoding).
    backbone, backbone_weights, image_size: the reconstructor's encoder.
    num_views: N views per sample (the middle one is the target).
    global_batch_size: samples per step over all replicas.
  """
  decoder: decoder_lib.FaceDecoder
  backbone: str
  backbone_weights: str
  image_size: int
  num_views: int
  global_batch_size: int


class Method(abc.ABC):
  """One way to train the reconstructor (see the module docstring).

  Subclasses set the class attributes and implement `objective`; most
  override `network_specs`, `stages` and `summary_images` too.

  Args:
    config: an instance of `config_class`.
    **setup: the `MethodSetup` fields, as keywords (the trainer passes them
      so that it needs no import of this package).
  """
  #: The --method value.
  name: ClassVar[str]
  #: The frozen dataclass of the method's config section (flags derive
  #: from its fields; its defaults are the paper's).
  config_class: ClassVar[type]
  #: Batch keys the objective reads.
  required_features: ClassVar[Tuple[str, ...]] = ("images", "landmarks",
                                                  "flag")
  #: Features beyond the core ones (images, landmarks, skin, flag) that the
  #: objective reads, e.g. ("depth", "coefficients") or ("identity",): each
  #: batch then holds <name> and has_<name> [B] bool, zeros where a sample's
  #: source lacks it (`mgc_tf.data.extra_features` lists the names).
  extra_features: ClassVar[Tuple[str, ...]] = ()
  #: Kinds of training data the method accepts (multi_view, video,
  #: single_view, ...), for documentation and the trainer's check.
  accepted_sources: ClassVar[Tuple[str, ...]] = ("multi_view", "video",
                                                 "single_view")

  def __init__(self, config, **setup):
    if not isinstance(config, self.config_class):
      raise TypeError(f"Method {self.name!r} needs a {self.config_class.__name__}"
                      f" config. Received: {type(config).__name__}")
    self.config = config
    self.setup = MethodSetup(**setup)

  @property
  def decoder(self) -> decoder_lib.FaceDecoder:
    return self.setup.decoder

  def reconstructor_spec(self) -> registry.NetworkSpec:
    """The reconstructor (image -> coefficients) every method trains."""
    setup = self.setup
    return reconstructor_lib.reconstructor_spec(
        setup.decoder.layout, backbone=setup.backbone,
        image_size=setup.image_size, backbone_weights=setup.backbone_weights)

  def network_specs(self) -> Dict[str, registry.NetworkSpec]:
    """name -> spec of every network the method trains (and checkpoints)."""
    return {RECONSTRUCTOR: self.reconstructor_spec()}

  def stages(self) -> Sequence[Stage]:
    """The training stages, in order (the last may run to max_steps)."""
    return SINGLE_STAGE

  def describe(self) -> str:
    """Lines for the console at the start of training (default: none)."""
    return ""

  def outputs(self) -> Dict[str, OutputSpec]:
    """Extra inference outputs beside the coefficients (e.g. a depth map)."""
    return {}

  def inference_spec(self) -> Optional[registry.NetworkSpec]:
    """How inference computes the [B, K] coefficients from the trained
    networks: a builder (`registry.register`) that also takes `networks=`
    (name -> built network) and `decoder=` and returns images [B, S, S, 3]
    -> coefficients [B, K]. None (the default): the reconstructor's output.
    Written to model.json; export, evaluation and inference all use it."""
    return None

  @abc.abstractmethod
  def objective(self, networks: Mapping[str, Any], batch: Mapping[str, Any],
                stage: Stage, training: bool = True) -> Objective:
    """Forward pass and loss of one replica's batch.

    Args:
      networks: name -> the built Keras networks of `network_specs()`.
      batch: the pipeline's batch: images [B, N, S, S, 3] in [0, 1],
        landmarks [B, N, 68, 2] crop pixels, flag [B] int, skin
        [B, N, S, S, 1], plus any of `required_features`.
      stage: the current `Stage` (its terms are the ones that are on).
      training: the networks' training mode (batch norm, dropout).
    """

  def batch_terms(self, per_sample: Mapping[str, tf.Tensor]
                  ) -> Dict[str, tf.Tensor]:
    """name -> [B] per-sample term  =>  name -> scalar: summed over the
    local batch and divided by the global batch size (see `Objective`)."""
    return batch_terms(per_sample, self.setup.global_batch_size)

  def summary_images(self, objective: Objective,
                     batch: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    """name -> [M, H, W, 3] images for TensorBoard (default: none)."""
    del objective, batch
    return {}


def weighted_total(terms: Mapping[str, tf.Tensor],
                   weights: Mapping[str, float], stage: Stage) -> tf.Tensor:
  """sum of weights[name] * terms[name] over the terms the stage has on."""
  parts = [float(weights[name]) * tf.cast(value, tf.float32)
           for name, value in terms.items()
           if stage.term_on(name) and weights.get(name, 0.0)]
  return tf.add_n(parts) if parts else tf.constant(0.0)


def field(default, help_text: str):
  """A field of a method's (or add-on's) config dataclass with its flag help
  (every field becomes a flag: `mgc_tf.training.config`)."""
  return dataclasses.field(default=default, metadata={"help": help_text})


def negative_fields(config, suffixes: Tuple[str, ...] = ("_weight",)
                    ) -> List[str]:
  """"--name must be >= 0, got v" for each field of the config dataclass
  whose name ends with one of `suffixes` (every field for ("",)) and whose
  value is negative; for a config's `validate`."""
  return [f"--{f.name} must be >= 0, got {getattr(config, f.name)}"
          for f in dataclasses.fields(config)
          if f.name.endswith(suffixes) and getattr(config, f.name) < 0]


def view_mean(per_view: tf.Tensor, batch_size: int,
              num_views: int) -> tf.Tensor:
  """[B*N] per-view values -> [B] float32, the mean over each sample's views."""
  return tf.reduce_mean(tf.reshape(tf.cast(per_view, tf.float32),
                                   [batch_size, num_views]), axis=1)


def batch_terms(per_sample: Mapping[str, tf.Tensor],
                global_batch_size: int) -> Dict[str, tf.Tensor]:
  """name -> [B] per-sample values  =>  name -> their sum over the local
  batch divided by the global batch size (an `Objective`'s terms)."""
  denominator = float(global_batch_size)
  return {name: tf.reduce_sum(value) / denominator
          for name, value in per_sample.items()}


def reference_landmark_loss(decoder: decoder_lib.FaceDecoder,
                            projected: tf.Tensor, landmarks: tf.Tensor,
                            weights, image_size: int) -> tf.Tensor:
  """`landmark_loss` [B*N] in squared *reference-crop* pixels (the face
  model's crop, as MGCNet's term), whatever the training crop size.

  Args:
    decoder: the face model's decoder (its `image_size` is the reference).
    projected: [B*N, 68, 2] model landmarks in training-crop pixels.
    landmarks: [B, N, 68, 2] (or [B*N, 68, 2]) labels, training-crop pixels.
    weights: [68] confidences c_k.
    image_size: the training crop's side S.
  """
  labels = tf.reshape(tf.cast(landmarks, tf.float32),
                      [-1, projected.shape[1], 2])
  to_reference = float(decoder.image_size) / float(image_size)
  return landmark_lib.landmark_loss(projected, labels,
                                    weights=weights) * to_reference**2


def side_by_side(views: tf.Tensor, batch_size: int,
                 num_views: int) -> tf.Tensor:
  """[B*N, S, S, C] -> [B, S, N*S, C]: each sample's views in a row."""
  s, c = views.shape[1], views.shape[-1]
  views = tf.reshape(views, [batch_size, num_views, s, s, c])
  views = tf.transpose(views, [0, 2, 1, 3, 4])
  return tf.reshape(views, [batch_size, s, num_views * s, c])
