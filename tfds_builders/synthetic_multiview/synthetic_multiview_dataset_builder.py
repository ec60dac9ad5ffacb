"""synthetic_multiview: multi-view faces rendered from the embedded face model.

No download: every example is drawn and rendered by `synthetic_scenes`
(beside this file) from the embedded synthetic face model, so
this is the dataset that works on a fresh machine. Each example holds three
views of one synthetic person at one instant (target = view 1, sources =
views 0 and 2) with the ground truth kept for evaluation. See
docs/datasets/synthetic_multiview.md.

Three versions, each a set of configs:
  1.0.0  default, small, tiny           clean faces, exact landmarks
  2.0.0  v2, v2_small, v2_tiny,         real conditions: occluders, detected
         v2_large                       landmarks, harder light and pose
         persons_small, persons_tiny    clean faces (1.0.0's recipe), each
                                        person seen at 3 instants (3
                                        examples), for identity-aware
                                        training and verification (SIR)
  3.0.0  ict, ict_small, ict_tiny       1.0.0's recipe rendered from the
                                        packaged ICT-FaceKit Light model
                                        (scan-derived shape, blendshape
                                        expressions, synthetic albedo)

  tfds build tfds_builders/synthetic_multiview --data_dir=DIR [--config=small]

Rendering is the cost: a build runs on Beam when given Beam pipeline options
(`--beam_pipeline_options=...`, meant for v2_large; see launch/beam/), one
batch of scenes per unit of work, else as a plain generator. Every scene is
drawn from its own (split, index) seed, so both give the same examples.
"""

import dataclasses
import functools
from typing import Iterator, List, Mapping, Optional, Tuple

import tensorflow_datasets as tfds

from mgc_tf.data import beam_build
from mgc_tf.data import features
from mgc_tf.facemodel import coefficients
from mgc_tf.facemodel import embedded_ict
from mgc_tf.facemodel import loaders
from mgc_tf.facemodel import synthetic
from mgc_tf.faces2d import detected_landmarks

from . import synthetic_scenes


CITATION = features.MGCNET_CITATION + """

@inproceedings{paysan20093d,
  title={A 3D Face Model for Pose and Illumination Invariant Face
         Recognition},
  author={Paysan, Pascal and Knothe, Reinhard and Amberg, Brian and
          Romdhani, Sami and Vetter, Thomas},
  booktitle={Sixth IEEE International Conference on Advanced Video and
             Signal Based Surveillance (AVSS)},
  pages={296--301},
  year={2009}
}"""


_ICT = embedded_ict.MODEL_NAME
_MODEL_NOTES = {
    synthetic.MODEL_NAME: "NOT a measured face model",
    _ICT: "ICT-FaceKit Light's scan-derived shape and blendshapes, MIT; "
          "its albedo is synthetic",
}


@dataclasses.dataclass
class SyntheticMultiviewConfig(tfds.core.BuilderConfig):
  """Size of the crops and of the splits.

  Attributes:
    image_size: side S of the square crops, pixels.
    num_train: examples in "train" (target yaw uniform in [-90, 90]).
    num_test: examples in "test" (a multiple of 3: balanced |yaw| bins).
    num_views: views per example (fixed by the renderer: 3).
    recipe: "v1" (version 1.0.0) or "v2" (2.0.0): `synthetic_scenes.RECIPES`.
    examples_per_identity: consecutive examples showing one person (at
      different instants: expression, pose, light); 1 = one person each.
    face_model: the packaged face model rendered (`load_face_model`'s
      name); recorded in the dataset's metadata.
  """
  image_size: int = 224
  num_train: int = 3000
  num_test: int = 300
  num_views: int = synthetic_scenes.NUM_VIEWS
  recipe: str = "v1"
  examples_per_identity: int = 1
  face_model: str = synthetic.MODEL_NAME


class Builder(beam_build.BeamBuild, tfds.core.GeneratorBasedBuilder):
  """Synthetic multi-view faces with ground-truth coefficients, pose, depth."""

  VERSION = tfds.core.Version("3.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "2.0.0": ("The v2 configs: landmarks as dlib's 68-point detector gives "
                "them (exact ones in landmarks_true), occluders with masks, "
                "a colour-model skin map, wider expressions, pitch, stronger "
                "coloured light, mostly photographic backgrounds. The 1.0.0 "
                "configs (default, small, tiny) still build, unchanged. "
                "The persons_* configs: 1.0.0's clean recipe with each "
                "person seen in 3 examples (3 instants)."),
      "3.0.0": ("The ict configs: 1.0.0's recipe rendered from the packaged "
                "ICT-FaceKit Light model (embedded-ict-light-v1): 100 "
                "identity modes, 53 ARKit blendshapes (0 to 3 per "
                "expression), the synthetic model's albedo carried over. "
                "The 1.0.0 and 2.0.0 configs still build, unchanged."),
  }
  BUILDER_CONFIGS = [
      SyntheticMultiviewConfig(
          name="default", version="1.0.0", image_size=224, num_train=3000,
          num_test=300,
          description="224 px crops, 3000 train / 300 test examples."),
      SyntheticMultiviewConfig(
          name="small", version="1.0.0", image_size=112, num_train=300,
          num_test=60,
          description="112 px crops, 300 train / 60 test examples; builds in "
                      "under 2 minutes on 2 CPU cores."),
      SyntheticMultiviewConfig(
          name="tiny", version="1.0.0", image_size=64, num_train=3,
          num_test=3,
          description="64 px, 3 train / 3 test: for unit tests and smoke "
                      "checks only."),
      SyntheticMultiviewConfig(
          name="v2", version="2.0.0", recipe="v2", image_size=224,
          num_train=3000, num_test=300,
          description="Real conditions (occluders, detected landmarks, "
                      "harder light and pose); 224 px, 3000 / 300."),
      SyntheticMultiviewConfig(
          name="v2_small", version="2.0.0", recipe="v2", image_size=112,
          num_train=300, num_test=60,
          description="Real conditions; 112 px, 300 train / 60 test "
                      "examples."),
      SyntheticMultiviewConfig(
          name="v2_tiny", version="2.0.0", recipe="v2", image_size=64,
          num_train=3, num_test=3,
          description="Real conditions; 64 px, 3 / 3: for unit tests."),
      SyntheticMultiviewConfig(
          name="v2_large", version="2.0.0", recipe="v2", image_size=224,
          num_train=30000, num_test=3000,
          description="Real conditions; 224 px, 30000 train / 3000 test "
                      "(10x v2): meant for a Beam build (launch/beam/)."),
      SyntheticMultiviewConfig(
          name="persons_small", version="2.0.0", recipe="v1", image_size=112,
          num_train=300, num_test=60, examples_per_identity=3,
          description="Clean faces, each person in 3 examples (3 instants "
                      "x 3 views = 9 images): 100 train / 20 test persons, "
                      "112 px."),
      SyntheticMultiviewConfig(
          name="ict", version="3.0.0", image_size=224, num_train=3000,
          num_test=300, face_model=_ICT,
          description="ICT-FaceKit Light faces, 224 px, 3000 train / 300 "
                      "test examples."),
      SyntheticMultiviewConfig(
          name="ict_small", version="3.0.0", image_size=112, num_train=300,
          num_test=60, face_model=_ICT,
          description="ICT-FaceKit Light faces, 112 px, 300 train / 60 "
                      "test examples."),
      SyntheticMultiviewConfig(
          name="ict_tiny", version="3.0.0", image_size=64, num_train=3,
          num_test=3, face_model=_ICT,
          description="ICT-FaceKit Light faces, 64 px, 3 / 3: for unit "
                      "tests."),
      SyntheticMultiviewConfig(
          name="persons_tiny", version="2.0.0", recipe="v1", image_size=64,
          num_train=6, num_test=6, examples_per_identity=3,
          description="Clean faces, 2 persons x 3 instants per split, 64 "
                      "px: for unit tests."),
  ]
  DEFAULT_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    _check_config(config)
    recipe = synthetic_scenes.RECIPES[config.recipe]
    num_coefficients = _num_coefficients(config.face_model)
    return self.dataset_info_from_configs(
        description=(
            "Three views of one synthetic person at one instant, rendered "
            f"from the face model '{config.face_model}' "
            f"({_MODEL_NOTES[config.face_model]}), over scikit-image "
            "photographs and procedural textures, with ground-truth "
            "coefficients, pose and depth."),
        features=features.multiview_features(
            config.image_size, num_views=config.num_views,
            image_format="png",
            extra=synthetic_scenes.extra_features(
                config.image_size, num_coefficients, recipe)),
        supervised_keys=None,
        # No dataset paper: this project renders it. The page is MGCNet's
        # (the method it is made for); the citation adds the Basel Face Model,
        # whose ranks, layout and conventions the embedded synthetic model
        # copies (it is not BFM data).
        homepage="https://arxiv.org/abs/2007.12494",
        citation=CITATION,
        metadata=tfds.core.MetadataDict(
            face_model=config.face_model,
            target_view=synthetic_scenes.TARGET_VIEW,
            yaw_bins_degrees=[list(b)
                              for b in synthetic_scenes.YAW_BINS_DEGREES],
            recipe=dataclasses.asdict(recipe)),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    recipe = synthetic_scenes.RECIPES[config.recipe]
    landmarks = None
    if recipe.detected_landmarks:
      # Which detector made `landmarks` depends on what is installed; the
      # workers of a Beam build must have the same (process_batch checks).
      landmarks = _landmark_source(True).description
      self.info.metadata["landmark_source"] = landmarks
      print(f"synthetic_multiview/{config.name}: landmarks from "
            f"{landmarks}", flush=True)
    process = functools.partial(
        process_batch, image_size=config.image_size,
        recipe_name=config.recipe, landmark_description=landmarks,
        examples_per_identity=config.examples_per_identity,
        face_model=config.face_model)
    return {split: self._generate_examples(
        split, scene_batches(split, count), process, {})
            for split, count in (("train", config.num_train),
                                 ("test", config.num_test))}


@dataclasses.dataclass(frozen=True)
class SceneBatch:
  """A unit of work: scenes start .. start + count - 1 of a split."""
  split: str
  start: int
  count: int


def scene_batches(split: str, num_examples: int,
                  batch: int = synthetic_scenes.EXAMPLES_PER_BATCH
                  ) -> List[SceneBatch]:
  """The split's scenes in the renderer's batches (from index 0, as the
  single-process build renders them, so the batches and images match)."""
  return [SceneBatch(split, start, min(batch, num_examples - start))
          for start in range(0, num_examples, batch)]


def _renderer(image_size: int, face_model: str = synthetic.MODEL_NAME
              ) -> synthetic_scenes.SceneRenderer:
  """One decoder and compiled render function per process, crop size and
  face model."""
  return beam_build.process_local(
      ("synthetic_multiview renderer", image_size, face_model),
      lambda: synthetic_scenes.SceneRenderer(_face_model(face_model),
                                             image_size))


def _landmark_source(use_detector: bool) -> detected_landmarks.LandmarkSource:
  """One landmark source per process."""
  return beam_build.process_local(
      ("synthetic_multiview landmarks", use_detector),
      lambda: detected_landmarks.landmark_source(use_detector))


def process_batch(batch: SceneBatch, tallies: Mapping[str, object],
                  image_size: int, recipe_name: str,
                  landmark_description: Optional[str],
                  examples_per_identity: int = 1,
                  face_model: str = synthetic.MODEL_NAME
                  ) -> Iterator[Tuple[str, dict]]:
  """One unit of a build: draws and renders a batch of scenes.

  Args:
    batch: which scenes.
    tallies: unused (nothing is skipped here): {}.
    image_size: side S of the crops, pixels.
    recipe_name: key of `synthetic_scenes.RECIPES`.
    landmark_description: for a recipe with detected landmarks, what the
      driver's landmark source is; this process must have the same.
    examples_per_identity: consecutive examples showing one person (the
      person follows from the index alone, so any batch can be drawn
      anywhere).
    face_model: the packaged face model's name.

  Raises:
    RuntimeError: this process would detect landmarks differently from the
      driver (e.g. a Beam worker without dlib).
  """
  del tallies
  recipe = synthetic_scenes.RECIPES[recipe_name]
  renderer = _renderer(image_size, face_model)
  source = None
  if recipe.detected_landmarks:
    source = _landmark_source(True)
    if source.description != landmark_description:
      raise RuntimeError(
          f"this worker's landmarks come from {source.description!r}, the "
          f"build's from {landmark_description!r}: install the same "
          "'mgc-tf[preprocess]' on the workers (see launch/beam/README.md)")
  for index, example in synthetic_scenes.generate_examples(
      batch.split, batch.count, image_size, face_model=renderer.face_model,
      renderer=renderer, start=batch.start, recipe=recipe,
      landmark_source=source, examples_per_identity=examples_per_identity):
    yield f"{batch.split}-{index:06d}", example


def _face_model(name: str = synthetic.MODEL_NAME):
  return loaders.load_face_model(name)


@functools.lru_cache(maxsize=None)
def _num_coefficients(face_model: str) -> int:
  """K of a packaged face model's layout (the synthetic model's ranks are
  constants: no need to build it just to describe the features)."""
  if face_model == synthetic.MODEL_NAME:
    return coefficients.CoefficientLayout(
        id_rank=synthetic.ID_RANK, albedo_rank=synthetic.ALBEDO_RANK,
        exp_rank=synthetic.EXP_RANK).size
  return coefficients.CoefficientLayout.from_face_model(
      _face_model(face_model)).size


def _check_config(config: SyntheticMultiviewConfig) -> None:
  if config.num_views != synthetic_scenes.NUM_VIEWS:
    raise ValueError(f"num_views must be {synthetic_scenes.NUM_VIEWS}. "
                     f"Received: {config.num_views}")
  if config.recipe not in synthetic_scenes.RECIPES:
    raise ValueError(f"recipe must be one of {sorted(synthetic_scenes.RECIPES)}"
                     f". Received: {config.recipe!r}")
  if config.face_model not in _MODEL_NOTES:
    raise ValueError(f"face_model must be one of {sorted(_MODEL_NOTES)}. "
                     f"Received: {config.face_model!r}")
  if config.examples_per_identity < 1:
    raise ValueError("examples_per_identity must be >= 1. Received: "
                     f"{config.examples_per_identity}")
  if config.num_test % len(synthetic_scenes.YAW_BINS_DEGREES):
    raise ValueError("num_test must be a multiple of the number of yaw bins "
                     f"({len(synthetic_scenes.YAW_BINS_DEGREES)}) so that the "
                     f"bins are balanced. Received: {config.num_test}")
