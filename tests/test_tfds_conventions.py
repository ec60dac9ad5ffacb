"""Every TFDS builder follows TFDS conventions: a citation, a homepage, a doc
on every feature, and `tfds.show_examples` draws its views."""

import glob
import importlib
import os
import warnings

import matplotlib
import pytest
import tensorflow_datasets as tfds

from mgc_tf.data import views

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDER_NAMES = sorted(
    os.path.basename(os.path.dirname(path)) for path in glob.glob(
        os.path.join(REPO, "tfds_builders", "*", "*_dataset_builder.py")))


def _builder_module(name):
  return importlib.import_module(
      f"tfds_builders.{name}.{name}_dataset_builder")


def test_every_builder_folder_is_found():
  assert len(BUILDER_NAMES) >= 8
  assert "synthetic_multiview" in BUILDER_NAMES


@pytest.mark.parametrize("name", BUILDER_NAMES)
def test_info_has_citation_homepage_and_feature_docs(name, tmp_path):
  builder_class = _builder_module(name).Builder
  configs = [c.name for c in builder_class.BUILDER_CONFIGS] or [None]
  for config in configs:
    info = builder_class(config=config, data_dir=str(tmp_path)).info
    assert info.citation.strip().startswith("@"), (name, config)
    assert info.homepage.startswith(("http://", "https://")), (name, config)
    # Not the default TFDS makes up for a builder without one.
    assert "tensorflow.org/datasets/catalog" not in info.homepage
    undocumented = [key for key, feature in info.features.items()
                    if not (feature.doc.desc or "").strip()]
    assert not undocumented, (name, config, undocumented)


@pytest.fixture
def agg_backend():
  """matplotlib's Agg backend for the test, the previous one restored."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  previous = matplotlib.get_backend()
  plt.switch_backend("Agg")
  try:
    yield plt
  finally:
    plt.close("all")
    plt.switch_backend(previous)


def _show(dataset, info, **kwargs):
  with warnings.catch_warnings():
    # plt.show() on Agg: "FigureCanvasAgg is non-interactive".
    warnings.simplefilter("ignore", UserWarning)
    return tfds.show_examples(views.single_views(dataset, info, **kwargs),
                              views.single_view_info(info, **kwargs),
                              rows=2, cols=3)


def _assert_drawn(figure, num_images):
  assert isinstance(figure, matplotlib.figure.Figure)
  drawn = [ax for ax in figure.axes if ax.get_images()]
  assert len(drawn) == num_images


def test_show_examples_on_synthetic_multiview(agg_backend, tmp_path):
  from tfds_builders.synthetic_multiview import (  # pylint: disable=g-import-not-at-top
      synthetic_multiview_dataset_builder as synthetic)
  builder = synthetic.Builder(config="tiny", data_dir=str(tmp_path))
  builder.download_and_prepare()
  dataset = builder.as_dataset(split="test")
  _assert_drawn(_show(dataset, builder.info), 6)  # 2 examples x 3 views
  _assert_drawn(_show(dataset, builder.info, key="skin"), 6)
  flat = views.single_view_info(builder.info)
  assert set(flat.features) == {"image", "view", "landmarks", "identity"}
  assert flat.citation == builder.info.citation
  first = next(iter(tfds.as_numpy(views.single_views(dataset,
                                                     builder.info))))
  assert first["image"].shape == (64, 64, 3) and first["view"] == 0
  assert first["landmarks"].shape == (68, 2)


def test_show_examples_on_w300_lp_dummy_data(agg_backend, tmp_path):
  from tfds_builders.w300_lp import (  # pylint: disable=g-import-not-at-top
      w300_lp_dataset_builder as w300)
  dummy_data = os.path.join(REPO, "tfds_builders", "w300_lp", "dummy_data")
  builder = w300.Builder(data_dir=str(tmp_path))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=dummy_data))
  dataset = builder.as_dataset(split="train")
  num_views = sum(len(example["view_names"])
                  for example in tfds.as_numpy(dataset))
  _assert_drawn(_show(dataset, builder.info), min(6, num_views))


def test_single_views_rejects_datasets_without_a_sequence_of_images(tmp_path):
  from tfds_builders.aflw2000_3d import (  # pylint: disable=g-import-not-at-top
      aflw2000_3d_dataset_builder as aflw)
  info = aflw.Builder(data_dir=str(tmp_path)).info
  with pytest.raises(ValueError, match="image_key"):
    views.single_view_info(info)
  w300_info = _builder_module("w300_lp").Builder(data_dir=str(tmp_path)).info
  with pytest.raises(ValueError, match="Received: key='view_names'"):
    views.single_view_info(w300_info, key="view_names")
