"""Training methods: one module per paper (DESIGN section 9).

    method_class = methods.get("mgcnet")
    method = method_class(method_class.config_class(), decoder=..., ...)

`register` adds a method class under its `name`; the modules of this
package register theirs on import, and a method defined elsewhere (a test,
a user's plugin) registers itself the same way.
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


# pylint: disable=g-import-not-at-top,wrong-import-position
from mgc_tf.methods import depthnet
from mgc_tf.methods import mgcnet

register(mgcnet.MGCNet)
register(depthnet.DepthNetMethod)
