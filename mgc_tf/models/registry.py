"""Network builders by name, so a trained model can be rebuilt from JSON.

A method declares each network it trains as a `NetworkSpec`: the name of a
registered builder and the keyword arguments (plain JSON values) it is
called with. The trainer writes the specs into `model.json`; the
`Reconstructor` rebuilds the networks from them and restores the weights.

    @registry.register("my_head")
    def build_my_head(image_size: int, units: int) -> keras.Model: ...

    model = registry.build(NetworkSpec("my_head", {"image_size": 64,
                                                   "units": 8}))

The package's own builders live in the modules of `PACKAGE_BUILDER_MODULES`;
`build` imports them the first time a name is missing, so that a command
which rebuilds a run (evaluate, infer, export) finds every method's networks
without importing the methods.
"""

import dataclasses
import importlib
from typing import Any, Callable, Dict

import keras

_BUILDERS: Dict[str, Callable[..., keras.Model]] = {}
#: Every module of mgc_tf that registers builders (a test checks the list).
PACKAGE_BUILDER_MODULES = (
    "mgc_tf.models.reconstructor",
    "mgc_tf.models.unet",
    "mgc_tf.models.sir_heads",
    "mgc_tf.models.pgn",
    "mgc_tf.models.gcn",
)


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
  """How to build one network.

  Attributes:
    builder: a name given to `register`.
    kwargs: JSON-serialisable keyword arguments of the builder.
  """
  builder: str
  kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_dict(self) -> Dict[str, Any]:
    return {"builder": self.builder, "kwargs": dict(self.kwargs)}

  @classmethod
  def from_dict(cls, values: Dict[str, Any]) -> "NetworkSpec":
    return cls(builder=values["builder"], kwargs=dict(values.get("kwargs",
                                                                 {})))


def register(name: str):
  """Decorator: registers `builder(**kwargs) -> keras.Model` under `name`."""

  def decorate(builder):
    existing = _BUILDERS.get(name)
    if existing is not None and existing is not builder and (
        existing.__qualname__ != builder.__qualname__):
      raise ValueError(f"A network builder named {name!r} is registered "
                       f"already ({existing.__module__}.{existing.__qualname__}).")
    _BUILDERS[name] = builder
    return builder

  return decorate


def names():
  return sorted(_BUILDERS)


def build(spec: NetworkSpec, **overrides) -> keras.Model:
  """Builds the network a spec describes (overrides replace kwargs)."""
  builder = _BUILDERS.get(spec.builder)
  if builder is None:
    for module in PACKAGE_BUILDER_MODULES:
      importlib.import_module(module)
    builder = _BUILDERS.get(spec.builder)
  if builder is None:
    raise KeyError(f"No network builder named {spec.builder!r} is registered "
                   f"(known: {', '.join(names())}). Import the module that "
                   "registers it (a method's module registers its networks).")
  return builder(**{**spec.kwargs, **overrides})


def call_output(network, images, coefficients):
  """An extra inference output of `images` [N, S, S, 3] float32.

  A composite output that reads the coefficients (it sets
  `takes_coefficients`, e.g. the robust method's refined albedo) gets the
  [N, K] float32 coefficients already predicted, rather than running the
  reconstructor a second time; any other network sees the images alone.
  """
  if getattr(network, "takes_coefficients", False):
    return network(images, training=False, coefficients=coefficients)
  return network(images, training=False)
