"""mgc-tf: MGCNet (ECCV 2020) self-supervised 3D face reconstruction in TF2/Keras 3."""

__version__ = "0.1.0"
