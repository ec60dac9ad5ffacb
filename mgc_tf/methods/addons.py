"""Objective terms that any method can add (DESIGN section 9).

Some papers' contributions are not a way to train but terms to add to one:
SIR's identity-aware shape regularisation (`--method=mgcnet
--sir_weight=1`), self-augmentation. An `AddOn` owns, like a method, its
config section (a frozen dataclass; its fields become flags), the networks
it trains (checkpointed with the method's), the extra batch features it
reads, and named weighted terms, computed from the batch and the method's
`Objective` (whose `coefficients` give the reconstructor's predictions, so
no second forward pass is run).

`compose(method_class, addon_configs)` is what the entry point hands the
trainer: the method class itself when no add-on is enabled (so a run
without add-ons is exactly the method), else a factory of `WithAddOns`,
a `Method` that runs the method's objective, adds each add-on's terms to
its total (gated by the stage's `terms` like the method's own) and merges
networks, extra features and descriptions. The trainer sees one method.
"""

import abc
from typing import Any, ClassVar, Dict, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from mgc_tf.methods import base
from mgc_tf.models import registry


class AddOn(abc.ABC):
  """Terms (and their networks) that can be added to any method.

  Args:
    config: an instance of `config_class`.
    **setup: the `MethodSetup` fields, as keywords.
  """
  #: Shown in logs; prefixes nothing by itself (term names are the add-on's).
  name: ClassVar[str]
  #: Frozen dataclass of its section; every field becomes a flag.
  config_class: ClassVar[type]
  #: Extra batch features its terms read (`mgc_tf.data.extra_features`).
  extra_features: ClassVar[Tuple[str, ...]] = ()

  def __init__(self, config, **setup):
    if not isinstance(config, self.config_class):
      raise TypeError(f"Add-on {self.name!r} needs a "
                      f"{self.config_class.__name__} config. Received: "
                      f"{type(config).__name__}")
    self.config = config
    self.setup = base.MethodSetup(**setup)

  @classmethod
  @abc.abstractmethod
  def enabled(cls, config) -> bool:
    """Whether `config` turns the add-on on (e.g. its weight > 0)."""

  def network_specs(self) -> Dict[str, registry.NetworkSpec]:
    """name -> spec of the networks it trains (names unique in the run)."""
    return {}

  @abc.abstractmethod
  def weights(self) -> Dict[str, float]:
    """term name -> weight in the total."""

  @abc.abstractmethod
  def terms(self, networks: Mapping[str, Any], batch: Mapping[str, Any],
            objective: base.Objective, stage: base.Stage,
            training: bool = True) -> Dict[str, tf.Tensor]:
    """Its unweighted terms for one replica's batch, each summed over the
    local batch and divided by the global batch size (like a method's).

    Args:
      networks: every network of the run (the method's and the add-ons').
      batch: the pipeline's batch.
      objective: what the method's objective returned for this batch.
      stage: the current stage; a term it has off must not change state.
      training: the networks' training mode; state (e.g. class centres)
        changes only when training.
    """

  def describe(self) -> str:
    return ""


def _merged(first: Dict[str, Any], second: Dict[str, Any],
            what: str) -> Dict[str, Any]:
  clash = sorted(set(first) & set(second))
  if clash:
    raise ValueError(f"Two parts of the objective declare the {what} "
                     f"{clash}; rename one.")
  return {**first, **second}


class WithAddOns(base.Method):
  """A method with add-on terms: to the trainer, one method.

  Args:
    method: the built method.
    addons: the built, enabled add-ons.
  """

  def __init__(self, method: base.Method, addons: Sequence[AddOn]):
    # Not Method.__init__: the config is the wrapped method's.
    self.method = method
    self.addons = tuple(addons)
    self.name = method.name
    self.config_class = method.config_class
    self.config = method.config
    self.setup = method.setup
    self.required_features = tuple(method.required_features)
    self.accepted_sources = tuple(method.accepted_sources)
    extras = list(method.extra_features)
    for addon in self.addons:
      extras.extend(addon.extra_features)
    self.extra_features = tuple(dict.fromkeys(extras))

  def network_specs(self) -> Dict[str, registry.NetworkSpec]:
    specs = self.method.network_specs()
    for addon in self.addons:
      specs = _merged(specs, addon.network_specs(), "networks")
    return specs

  def stages(self) -> Sequence[base.Stage]:
    return self.method.stages()

  def outputs(self) -> Dict[str, base.OutputSpec]:
    return self.method.outputs()

  def inference_spec(self) -> Optional[registry.NetworkSpec]:
    return self.method.inference_spec()

  def describe(self) -> str:
    parts = [self.method.describe()] + [a.describe() for a in self.addons]
    return "; ".join(p for p in parts if p)

  def objective(self, networks: Mapping[str, Any], batch: Mapping[str, Any],
                stage: base.Stage, training: bool = True) -> base.Objective:
    out = self.method.objective(networks, batch, stage, training=training)
    if out.coefficients is None:
      raise ValueError(
          f"Method {self.method.name!r} returns no coefficients in its "
          "Objective, so add-on terms cannot be added to it.")
    total, terms = out.total, dict(out.terms)
    for addon in self.addons:
      added = addon.terms(networks, batch, out, stage, training=training)
      terms = _merged(terms, added, "terms")
      total = total + base.weighted_total(added, addon.weights(), stage)
    return base.Objective(total=total, terms=terms, details=out.details,
                          coefficients=out.coefficients)

  def summary_images(self, objective: base.Objective,
                     batch: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    return self.method.summary_images(objective, batch)


def enabled_configs(addon_classes: Mapping[str, type],
                    addon_configs: Mapping[str, Any]) -> Dict[str, Any]:
  """name -> config of the add-ons that `addon_configs` turns on."""
  return {name: config for name, config in (addon_configs or {}).items()
          if addon_classes[name].enabled(config)}


def compose(method_class, addon_classes: Mapping[str, type],
            addon_configs: Mapping[str, Any]):
  """What the trainer builds: `method_class` alone, or with the add-ons.

  Args:
    method_class: the `Method` subclass.
    addon_classes: name -> `AddOn` subclass (the registered ones).
    addon_configs: name -> its config (None or {}: none).

  Returns:
    `method_class` itself when no add-on is enabled; else a callable with
    its signature, `(method_config, **setup) -> WithAddOns`.
  """
  chosen = enabled_configs(addon_classes, addon_configs)
  if not chosen:
    return method_class

  def build(method_config, **setup) -> WithAddOns:
    method = method_class(method_config, **setup)
    return WithAddOns(method, [addon_classes[name](config, **setup)
                               for name, config in chosen.items()])

  build.__name__ = f"{method_class.__name__}WithAddOns"
  return build


def validate(config) -> Any:
  """Runs the config's own `validate` if it has one; returns the config."""
  if hasattr(config, "validate"):
    config.validate()
  return config


# A config field with its flag help (one definition for methods and add-ons).
field = base.field
