"""Keras networks only: backbones, the reconstructor (image -> coefficients),
extra heads and face-embedding networks.

What the coefficients mean (layout, decoder to a mesh, shading) is the face
model's business and lives in `mgc_tf.facemodel`.
"""
