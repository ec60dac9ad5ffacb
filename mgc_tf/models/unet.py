"""Image-to-image U-Nets: Shu et al.'s DepthNet f and suitability net h.

    image [B, S, S, 3] RGB in [0, 1]
      -> `levels` encoder blocks (two 3x3 conv + ReLU, then 2x2 max-pool),
         `filters` channels doubling at each level
      -> a bottleneck block
      -> `levels` decoder blocks (2x up-sampling, concatenation with the
         encoder block of the same size: the skips, two 3x3 conv + ReLU)
      -> 1x1 conv + sigmoid -> [B, S, S, 1] in [0, 1]

DepthNet's output is the normalised depth D' of eq. 7
(`mgc_tf.geometry.depth_map`: face pixels in about [0.1, 0.9], 0 off the
face); the suitability net's is the map C of eq. 14. The paper used a
U-Net for f (after Sela et al.) and did not describe h beyond image -> map;
both are this builder, h smaller by default. S must be a multiple of
2^levels. Input named "image", like the reconstructor's, so an export can
feed both the same crops.
"""

import keras

from mgc_tf.models import registry

INPUT_NAME = "image"
#: sigmoid(2) = 0.88: the suitability map starts near "every pixel counts".
SUITABILITY_BIAS = 2.0


def _check(image_size: int, filters: int, levels: int) -> None:
  if levels < 1 or filters < 1:
    raise ValueError("A U-Net needs levels >= 1 and filters >= 1. Received: "
                     f"levels={levels}, filters={filters}")
  if image_size % (2**levels):
    raise ValueError(f"image_size must be a multiple of 2^levels = "
                     f"{2**levels}. Received: image_size={image_size}")


def build_unet(image_size: int, filters: int = 32, levels: int = 4,
               output_bias: float = 0.0, name: str = "unet") -> keras.Model:
  """[B, S, S, 3] -> [B, S, S, 1] sigmoid map (see the module docstring).

  Args:
    image_size: S, pixels.
    filters: channels of the first level (doubled per level).
    levels: encoder (and decoder) blocks.
    output_bias: initial bias of the last layer (its sigmoid is the
      initial output).
    name: the model's name.
  """
  _check(image_size, filters, levels)

  def block(x, channels, prefix):
    for i in range(2):
      x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                              name=f"{prefix}_conv{i}")(x)
    return x

  images = keras.Input((image_size, image_size, 3), name=INPUT_NAME)
  x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(images)
  skips = []
  for level in range(levels):
    x = block(x, filters * 2**level, f"down{level}")
    skips.append(x)
    x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
  x = block(x, filters * 2**levels, "bottleneck")
  for level in reversed(range(levels)):
    x = keras.layers.UpSampling2D(2, name=f"up{level}")(x)
    x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
    x = block(x, filters * 2**level, f"dec{level}")
  out = keras.layers.Conv2D(
      1, 1, activation="sigmoid", dtype="float32", name="map",
      bias_initializer=keras.initializers.Constant(output_bias))(x)
  return keras.Model(images, out, name=name)


@registry.register("depth_unet")
def build_depth_unet(image_size: int, filters: int = 32, levels: int = 4
                     ) -> keras.Model:
  """DepthNet f: image -> D' [B, S, S, 1] (eq. 7)."""
  return build_unet(image_size, filters, levels, name="depthnet")


@registry.register("suitability_unet")
def build_suitability_unet(image_size: int, filters: int = 16,
                           levels: int = 3) -> keras.Model:
  """Suitability net h: image -> C [B, S, S, 1] in [0, 1] (eq. 14)."""
  return build_unet(image_size, filters, levels, output_bias=SUITABILITY_BIAS,
                    name="suitability")
