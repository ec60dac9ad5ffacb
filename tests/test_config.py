"""Layered configuration: dataclass defaults -> flags -> validated config -> JSON."""

import dataclasses
import enum

from absl import flags
import pytest

from mgc_tf import methods
from mgc_tf.methods import mgcnet
from mgc_tf.training import config as config_lib


def _flag_values(*classes):
  values = flags.FlagValues()
  for cls in classes:
    config_lib.define_flags(cls, values)
  return values


def test_every_field_is_a_flag_with_the_dataclass_default():
  values = _flag_values(config_lib.TrainConfig, mgcnet.MGCNetConfig)
  for cls in (config_lib.TrainConfig, mgcnet.MGCNetConfig):
    for field, _ in config_lib.flag_fields(cls):
      default = field.default
      if isinstance(default, enum.Enum):
        default = default.value
      assert values[field.name].default == default, field.name
      assert values[field.name].help, field.name
  # The fields that are not flags: the method's name and section.
  assert "method_config" not in values and "method" not in values


def test_flags_resolve_to_the_config_with_enums():
  values = _flag_values(config_lib.TrainConfig, mgcnet.MGCNetConfig)
  values(["train", "--model_dir=/tmp/run", "--lr_schedule=cosine",
          "--backbone=resnet18", "--depth_reference=target",
          "--pixel_weight=0.3"])
  section = config_lib.from_flags(mgcnet.MGCNetConfig, values)
  config = config_lib.from_flags(config_lib.TrainConfig, values,
                                 method_config=section).validate()
  assert config.lr_schedule is config_lib.LrSchedule.COSINE
  assert config.backbone == "resnet18" and config.strategy == "default"
  assert section.depth_reference is mgcnet.DepthReference.TARGET
  assert section.loss_weights().pixel == 0.3
  # Untouched flags keep the dataclass defaults.
  assert config.max_steps == config_lib.TrainConfig().max_steps
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.max_steps = 3  # frozen


def test_json_round_trip_keeps_the_method_section():
  config = config_lib.TrainConfig(
      model_dir="/tmp/run", lr_schedule=config_lib.LrSchedule.STEP,
      method_config=mgcnet.MGCNetConfig(use_covisible_map=False)).validate()
  again = config_lib.TrainConfig.from_json(config.to_json(),
                                           mgcnet.MGCNetConfig)
  assert again == config
  with pytest.raises(ValueError, match="Unknown TrainConfig settings"):
    config_lib.from_dict(config_lib.TrainConfig, {"model_dirr": "x"})


def test_validate_names_every_bad_setting():
  bad = config_lib.TrainConfig(
      model_dir="", num_views=4, learning_rate=0.0,
      method_config=mgcnet.MGCNetConfig(pixel_weight=-1.0))
  with pytest.raises(ValueError) as error:
    bad.validate()
  message = str(error.value)
  for part in ("--model_dir is required", "--num_views must be odd",
               "--learning_rate must be > 0", "--pixel_weight must be >= 0"):
    assert part in message


def test_a_shared_flag_must_agree_on_its_default():

  @dataclasses.dataclass(frozen=True)
  class Other:
    pixel_weight: float = dataclasses.field(default=9.0,
                                            metadata={"help": "x"})

  values = _flag_values(mgcnet.MGCNetConfig)
  with pytest.raises(ValueError, match="--pixel_weight"):
    config_lib.define_flags(Other, values)


def test_mgcnet_is_the_registered_default_method():
  assert config_lib.TrainConfig.method == "mgcnet"
  assert methods.get("mgcnet") is mgcnet.MGCNet
  with pytest.raises(ValueError, match="known: depthnet, mgcnet, "):
    methods.get("no_such_method")
