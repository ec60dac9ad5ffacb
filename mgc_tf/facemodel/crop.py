"""The 224 crop convention that the face models and the 2D alignment share.

A face is aligned into a square crop of CROP_SIZE pixels by putting its five
points on TEMPLATE_5PT_224 (`mgc_tf.faces2d.alignment`); the face models'
camera looks at that crop with DEFAULT_FOCAL_LENGTH (Deep3DFaceReconstruction's
camera, which MGCNet's synthetic data and our embedded model use). NumPy only,
so that importing it does not load TensorFlow.
"""

import numpy as np

#: Side of the aligned square crop, pixels.
CROP_SIZE = 224

#: Deep3DFaceReconstruction's focal length for the 224 crop, pixels.
DEFAULT_FOCAL_LENGTH = 1015.0

#: 5-point alignment template of the 224 crop (DESIGN.md section 6), pixels:
#: eye centres (image left, image right), nose tip, mouth corners.
TEMPLATE_5PT_224 = np.array([
    [81.672, 88.471],
    [141.863, 88.463],
    [112.0, 132.863],
    [87.397, 153.563],
    [136.007, 153.552],
], dtype=np.float64)
