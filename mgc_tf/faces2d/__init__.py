"""2D face work on images: detection and 68 landmarks (`preprocessing`),
the 5-point similarity alignment to the crop template (`alignment`), the skin
classifier (`skin`) and left/right mirroring of 68-point landmarks (`mirror`).

Everything here works on pixels of one image; it reads files only through
`mgc_tf.io`, and knows nothing of TFDS, 3D face models or training.
"""
