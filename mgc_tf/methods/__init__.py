"""Training methods: one module per paper (DESIGN section 9).

    method_class = methods.get("mgcnet")
    method = method_class(method_class.config_class(), decoder=..., ...)

`register` adds a method class under its `name`; the modules of this
package register theirs on import, and a method defined elsewhere (a test,
a user's plugin) registers itself the same way. `register_addon` does the
same for objective terms that any method can add (`addons.AddOn`, e.g.
SIR's `--sir_weight`); `composed(name, addon_configs)` is what the trainer
builds.
"""

from typing import Dict, List, Type

from mgc_tf.methods import base
from mgc_tf.methods.base import Method, MethodSetup, Objective, OutputSpec, Stage

_METHODS: Dict[str, Type[base.Method]] = {}


def register(method_class: Type[base.Method]) -> Type[base.Method]:
  """Class decorator: makes `--method=<method_class.name>` select it."""
  name = method_class.name
  existing = _METHODS.get(name)
  if existing is not None and existing.__qualname__ != method_class.__qualname__:
    raise ValueError(f"A method named {name!r} is registered already "
                     f"({existing.__module__}.{existing.__qualname__}).")
  _METHODS[name] = method_class
  return method_class


def names() -> List[str]:
  return sorted(_METHODS)


def get(name: str) -> Type[base.Method]:
  """The method class registered under `name`."""
  if name not in _METHODS:
    raise ValueError(f"--method={name!r} is not a known method; known: "
                     f"{', '.join(names())}.")
  return _METHODS[name]


_ADDONS: Dict[str, type] = {}


def register_addon(addon_class: type) -> type:
  """Class decorator: makes an `addons.AddOn` (its flags) usable with any
  method."""
  name = addon_class.name
  existing = _ADDONS.get(name)
  if existing is not None and existing.__qualname__ != addon_class.__qualname__:
    raise ValueError(f"An add-on named {name!r} is registered already "
                     f"({existing.__module__}.{existing.__qualname__}).")
  _ADDONS[name] = addon_class
  return addon_class


def addon_classes() -> Dict[str, type]:
  """name -> add-on class, every registered one."""
  return dict(sorted(_ADDONS.items()))


def composed(name: str, addon_configs=None):
  """What the trainer builds for `--method=name` with these add-on configs:
  the method class itself when none is enabled (see `addons.compose`)."""
  return addons.compose(get(name), _ADDONS, addon_configs or {})


# pylint: disable=g-import-not-at-top,wrong-import-position
from mgc_tf.methods import addons
from mgc_tf.methods import depthnet
from mgc_tf.methods import mgcnet
from mgc_tf.methods import pgn
from mgc_tf.methods import robust
from mgc_tf.methods import self_augmentation
from mgc_tf.methods import sir

register(mgcnet.MGCNet)
register(sir.SIR)
register_addon(sir.SIRAddOn)
register_addon(self_augmentation.SelfAugmentationAddOn)
register(depthnet.DepthNetMethod)
register(pgn.PGNMethod)
register(robust.Robust)
