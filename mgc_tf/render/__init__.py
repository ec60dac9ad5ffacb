"""Rendering: the rasterizer kernel (build and load), the rasterizer,
the face renderer, covisibility maps, bilinear sampling and view synthesis.
Everything but visibility is differentiable TensorFlow."""
