"""The embedded synthetic face model's design constants.

Ranks, camera, seed, the sheet's resolution and vertical layout, feature
positions and sizes (eye frame, mm), colours (linear RGB), the regions the
expression components are windowed to, and the axis and colour directions.
"""

import numpy as np

from mgc_tf.facemodel import crop

#: `FaceModel.name` of the model built here. Bump the suffix on any change
#: that alters the arrays: checkpoints trained on one version do not transfer.
MODEL_NAME = "embedded-synthetic-v1"

ID_RANK = 80
EXP_RANK = 64
ALBEDO_RANK = 80

#: The camera and the crop (`mgc_tf.facemodel.crop`): focal length, pixels,
#: for the IMAGE_SIZE crop, and its 5-point alignment template, pixels.
FOCAL_LENGTH = crop.DEFAULT_FOCAL_LENGTH
IMAGE_SIZE = crop.CROP_SIZE
ALIGNMENT_TEMPLATE_224 = crop.TEMPLATE_5PT_224

#: Seed of the legacy NumPy generator (its stream is frozen across releases).
RANDOM_SEED = 20200823

#: Shape components are shrunk, where needed, so that none folds the mesh
#: over within this many standard deviations.
FOLD_MARGIN = 3.0

# --- Sheet resolution ---------------------------------------------------------
# An odd number of columns puts one column exactly on the mid-sagittal plane
# (x = 0), which keeps the grid mirror-symmetric.
NUM_COLUMNS = 115
NUM_ROWS = 101
THETA_MAX = np.deg2rad(100.0)   # half the angular span of the sheet

# --- Vertical layout, mm, in the "eye frame" (y = 0 on the eye centres) -------
Y_TOP = 95.0            # top row of the sheet (above the hairline)
CHIN_Y = -100.0         # where the chin starts to roll under (at x = 0)
JAW_RISE = 32.0         # how much higher the jaw border is at the sides
ROLL_RADIUS = 16.0      # radius of the roll under the jaw and chin
ROLL_ANGLE = np.deg2rad(80.0)
ROLL_ROWS = 7
#: Eye-frame -> model-space shift: the sheet spans about -116 .. +95 mm in
#: the eye frame; this puts the origin near the middle of the head.
EYE_LINE_Y = 8.0

# --- Features, eye frame, mm ------------------------------------------------
EYE_X = 31.0              # eye centres at (+/-EYE_X, 0)
EYE_HALF_WIDTH = 15.0     # half the width of the eye opening
UPPER_LID_HEIGHT = 5.6    # lid margins above/below the centre line
LOWER_LID_HEIGHT = 4.4
CANTHAL_TILT = 1.0        # outer corners this much higher than the centre
IRIS_CENTRE_Y = 0.3
IRIS_RADIUS = 6.0
PUPIL_RADIUS = 2.2
NASION_Y = 8.0            # top of the nose bridge
NOSE_TIP_Y = -40.0        # pronasale (most protruding point)
SUBNASALE_Y = -48.0       # where the nose meets the upper lip
ALAR_X = 14.0             # centres of the nostril wings
MOUTH_Y = -65.0           # mouth line (stomion) at the centre
MOUTH_HALF_WIDTH = 24.5
UPPER_LIP_THICKNESS = 7.5  # vermilion heights at the centre
LOWER_LIP_THICKNESS = 9.5
BROW_Y = 21.0
BROW_X = 31.0
BROW_HALF_LENGTH = 22.0

# --- Colours, linear RGB ----------------------------------------------------
SKIN_RGB = (0.75, 0.54, 0.44)
LIP_RGB = (0.66, 0.33, 0.31)
MOUTH_LINE_RGB = (0.30, 0.11, 0.10)
BROW_RGB = (0.33, 0.22, 0.16)
SCLERA_RGB = (0.88, 0.86, 0.82)
CARUNCLE_RGB = (0.80, 0.62, 0.58)   # the pink inner eye corner
IRIS_RGB = (0.34, 0.21, 0.12)
LIMBUS_RGB = (0.16, 0.10, 0.06)     # the dark rim of the iris
PUPIL_RGB = (0.03, 0.03, 0.03)
LASH_RGB = (0.12, 0.09, 0.08)
NOSTRIL_RGB = (0.20, 0.09, 0.08)

# --- Regions the expression components are windowed to: centre, radii --------
MOUTH_REGION = ((0.0, -85.0), (55.0, 50.0))
EYE_REGIONS = (((-EYE_X, 2.0), (24.0, 16.0)), ((EYE_X, 2.0), (24.0, 16.0)))
BROW_REGIONS = (((-BROW_X, BROW_Y), (28.0, 13.0)),
                ((BROW_X, BROW_Y), (28.0, 13.0)))

AXIS_X = np.array([1.0, 0.0, 0.0])
AXIS_Y = np.array([0.0, 1.0, 0.0])
AXIS_Z = np.array([0.0, 0.0, 1.0])
