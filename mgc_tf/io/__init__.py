"""File formats and bad-input accounting.

Landmark annotation files and MATLAB .mat (`annotations`), scan meshes
(`scans`: obj/ply/off/stl through trimesh, VRML), videos (`video_io`), and
`bad_input`: the error a reader raises for an unusable file, the counters a
dataset build keeps of what it skipped, and image reading. `files` opens
and lists by local path or by URL (`gs://`, `ram://`, ...), so every reader
here also reads a manual folder on a remote filesystem.

Readers return NumPy arrays in mgc_tf's conventions (pixels 0-based, OpenCV);
nothing here knows about faces beyond the number of landmarks.
"""
