"""The embedded SYNTHETIC face model, the default when no BFM file is given.

THIS IS NOT A MEASURED FACE MODEL. The Basel Face Model (BFM) cannot be
downloaded automatically (its licence has to be accepted by hand), so that
mgc_tf runs on a fresh machine we generate a stand-in here: a hand-designed,
analytic morphable model with the BFM's ranks (identity 80, expression 64,
albedo 80) and conventions. It looks like a human face and varies plausibly,
so the whole pipeline (rendering, losses, multi-view consistency, synthetic
datasets) can be exercised end to end, but its statistics are invented:
results obtained with it say nothing about real faces. Convert a real BFM
with `python -m mgc_tf.convert_face_model` for research.

`embedded_face_model()` builds it in NumPy in about a second and caches it
for the process. Modules: `params` (every design constant, re-exported
here), `smooth` (building blocks), `features` (feature curves, heights,
colour regions), `sheet` (base head, grid, the mean face), `landmarks` (the
68 landmarks and the default pose), `bases` (identity, expression, albedo),
`model` (assembly). It is deterministic: no randomness except NumPy's legacy
`RandomState` with a fixed seed (its stream is frozen across NumPy releases),
and the stored arrays are rounded to a fixed grid so that last-bit
differences between BLAS/libm builds do not change them.

Geometry (11,615 vertices, 22,800 triangles, one manifold sheet):
  * The sheet is a 101 x 115 grid over a cylinder-like parameter domain:
    angle theta around the vertical axis (+/-100 degrees, columns denser at
    the front) and height (rows denser between the chin and the brows). The
    face therefore wraps round the cheeks towards the ears and still looks
    right at +/-60 degrees of yaw. Each row of the "base head" is a flattened
    ellipse (forehead, temples, cheeks, jaw taper); the bottom rows roll
    under the jaw and the chin.
  * Facial features are smooth height fields on frontal coordinates
    (u, v) = the (x, y) of the base head, in mm, that displace the base along
    its normal: brow ridge, eye sockets, eyeballs with a cornea, lid margins
    and upper-lid creases, nose (dorsum, rounded tip, alar wings and creases),
    dental-arch bulge, upper and lower lips meeting in a mouth line, philtrum,
    labiomental fold, chin, cheekbones, temples.
  * The 68 landmarks (iBUG order) are the vertices nearest analytic feature
    positions (lid curves, lip borders, ...); the jaw contour is the frontal
    outline of the face, sampled evenly by arc length.

Bases (pre-multiplied by their standard deviations, `FaceModel` convention):
  * Identity: 20 hand-designed regional deformations (face width, lower-face
    length, nose size, jaw width, chin, cheeks, nose length, brow ridge, ...)
    then seeded random mixtures of broad Gaussian bumps; orthogonalised in
    that order; the largest vertex displacement at one standard deviation
    decays from 5 mm (first) to about 0.4 mm (last).
  * Expression: 22 hand-designed motions windowed to the mouth, eye and brow
    regions (jaw open, smile, blink, brows up, pucker, squint, frown, wink,
    ...) then seeded random small bumps in the same regions; orthogonalised;
    largest displacement about 4.5 mm (smile, jaw) decaying to 0.3 mm.
  * Identity and expression components are shrunk where needed so that none
    folds the mesh over (lips through each other, a lid through the eyeball)
    within +/- FOLD_MARGIN standard deviations.
  * Albedo: smooth scalar fields times skin-like colour directions (lighter,
    redder, yellower; darker brows, bluer eyes, redder lips, flushed cheeks,
    beard shadow, ...), largest channel change 0.07 decaying to about 0.01;
    not orthogonalised, which would mix the colour directions into unnatural
    (green, blue) tints.

Conventions (DESIGN.md section 4): the BFM's axes (+x to the viewer's right,
+y up, +z out of the face), origin near the head centre, millimetres;
triangles counter-clockwise seen from outside; albedo linear RGB in [0, 1].
The camera is Deep3DFaceReconstruction's: focal length 1015 px for the 224
crop, default pose (rz, ry, rx) = (0, 0, pi) and a translation (0, ty, ~1100
mm) that puts the mean face's eye centres, nose tip and mouth corners on the
224 alignment template, so renders at the default pose look like aligned
crops.
"""

from mgc_tf.facemodel.synthetic.model import embedded_face_model
from mgc_tf.facemodel.synthetic.params import (ALAR_X, ALBEDO_RANK,
                                               ALIGNMENT_TEMPLATE_224,
                                               BROW_HALF_LENGTH, BROW_REGIONS,
                                               BROW_RGB, BROW_X, BROW_Y,
                                               CANTHAL_TILT, CARUNCLE_RGB,
                                               CHIN_Y, EXP_RANK, EYE_HALF_WIDTH,
                                               EYE_LINE_Y, EYE_REGIONS, EYE_X,
                                               FOCAL_LENGTH, FOLD_MARGIN,
                                               ID_RANK, IMAGE_SIZE,
                                               IRIS_CENTRE_Y, IRIS_RADIUS,
                                               IRIS_RGB, JAW_RISE, LASH_RGB,
                                               LIMBUS_RGB, LIP_RGB,
                                               LOWER_LID_HEIGHT,
                                               LOWER_LIP_THICKNESS, MODEL_NAME,
                                               MOUTH_HALF_WIDTH, MOUTH_LINE_RGB,
                                               MOUTH_REGION, MOUTH_Y, NASION_Y,
                                               NOSE_TIP_Y, NOSTRIL_RGB,
                                               NUM_COLUMNS, NUM_ROWS,
                                               PUPIL_RADIUS, PUPIL_RGB,
                                               RANDOM_SEED, ROLL_ANGLE,
                                               ROLL_RADIUS, ROLL_ROWS,
                                               SCLERA_RGB, SKIN_RGB,
                                               SUBNASALE_Y, THETA_MAX,
                                               UPPER_LID_HEIGHT,
                                               UPPER_LIP_THICKNESS, Y_TOP)
