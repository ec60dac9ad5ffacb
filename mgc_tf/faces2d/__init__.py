"""2D face work on images: detection and 68 landmarks (`preprocessing`),
the 5-point similarity alignment to the crop template (`alignment`), the skin
classifier (`skin`), left/right mirroring of 68-point landmarks (`mirror`),
and landmarks as the detector gives them for crops whose true landmarks are
known, with a measured noise model where it gives none (`detected_landmarks`).

Everything here works on pixels of one image; it reads files only through
`mgc_tf.io`, and knows nothing of TFDS, 3D face models or training.
"""
