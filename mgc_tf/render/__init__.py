"""Rendering: the rasterizer kernel (build and load), rasterizer backends,
the renderer (decoded face -> image, mask, depth), covisibility, sampling and
view synthesis. The face model's lighting (SH shading, vertex normals) lives
in `mgc_tf.facemodel.shading`."""
