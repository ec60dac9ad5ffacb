"""Scan mesh readers: VRML 2.0 parser, trimesh formats, broken files."""

import gzip

import numpy as np
import pytest

from mgc_tf.io import scans
from mgc_tf.io.bad_input import BadExampleError

# A square (quad) and a triangle sharing an edge, in mm.
SQUARE_AND_TRIANGLE_POINTS = np.array(
    [[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0], [20, 5, 3]], np.float64)
SQUARE_AND_TRIANGLE_FACES = np.array(
    [[0, 1, 2], [0, 2, 3], [1, 4, 2]], np.int64)

# What a scanner's VRML export looks like: header, comments, commas, a
# texture with a URL holding '#' and braces, 2-D texture coordinates (whose
# `point` list and `texCoordIndex` must not be taken for geometry), a quad.
SCANNER_STYLE_VRML = """#VRML V2.0 utf8
# exported by a scanner
WorldInfo { title "scan #1 {test}" info [ "a", "b" ] }
NavigationInfo { type [ "EXAMINE", "ANY" ] headlight TRUE }
Shape {
  appearance Appearance {
    material Material { diffuseColor 0.8 0.8 0.8 shininess 0.2 }
    texture ImageTexture { url "scan#1.bmp" }
  }
  geometry IndexedFaceSet {
    solid FALSE
    creaseAngle 0.5
    coord Coordinate {
      point [
        0 0 0, 10 0 0, 10 10 0,  # comment inside a list
        0 10 0, 20 5 3
      ]
    }
    texCoord TextureCoordinate { point [ 0 0, 1 0, 1 1, 0 1, 0.5 0.5 ] }
    coordIndex [ 0, 1, 2, 3, -1, 1, 4, 2, -1 ]
    texCoordIndex [ 0, 1, 2, 3, -1, 1, 4, 2, -1 ]
  }
}
ROUTE A.b TO C.d
"""


def _write(path, text):
  path.write_text(text)
  return str(path)


def _obj_text(points, faces):
  lines = [f"v {x} {y} {z}" for x, y, z in points]
  lines += ["f " + " ".join(str(i + 1) for i in face) for face in faces]
  return "\n".join(lines) + "\n"


class TestTriangulatePolygons:

  def test_quad_and_triangle(self):
    faces = scans.triangulate_polygons(
        np.array([0, 1, 2, 3, -1, 1, 4, 2, -1]), num_vertices=5)
    np.testing.assert_array_equal(faces, SQUARE_AND_TRIANGLE_FACES)

  def test_pentagon_fan_and_missing_final_separator(self):
    faces = scans.triangulate_polygons(np.array([4, 3, 2, 1, 0]), 5)
    np.testing.assert_array_equal(faces, [[4, 3, 2], [4, 2, 1], [4, 1, 0]])

  def test_polygons_with_fewer_than_three_corners_are_dropped(self):
    faces = scans.triangulate_polygons(
        np.array([0, 1, -1, 2, -1, 0, 1, 2, -1, -1]), 3)
    np.testing.assert_array_equal(faces, [[0, 1, 2]])

  def test_empty(self):
    assert scans.triangulate_polygons(np.array([]), 3).shape == (0, 3)

  @pytest.mark.parametrize("coord_index", [[0, 1, 5, -1], [0, -2, 1, -1],
                                           [0, 1.5, 2, -1]])
  def test_bad_indices_raise(self, coord_index):
    with pytest.raises(BadExampleError) as info:
      scans.triangulate_polygons(np.array(coord_index), 3)
    assert info.value.reason == scans.UNREADABLE


class TestParseVrml:

  def test_scanner_style_file(self):
    vertices, faces = scans.parse_vrml(SCANNER_STYLE_VRML)
    np.testing.assert_allclose(vertices, SQUARE_AND_TRIANGLE_POINTS)
    np.testing.assert_array_equal(faces, SQUARE_AND_TRIANGLE_FACES)

  def test_transforms_def_use_and_several_shapes(self):
    # The same DEF'd triangle twice: once as is, once under nested Transforms.
    # Inner: scale 2, rotate 90 deg about z, translate (10, 0, 0):
    #   (1, 0, 0) -> (2, 0, 0) -> (0, 2, 0) -> (10, 2, 0); outer adds z + 5.
    text = """#VRML V2.0 utf8
    PROTO Unused [ field SFFloat size 1 ] { Group { } }
    DEF TRI Shape { geometry IndexedFaceSet {
      coord DEF PTS Coordinate { point [ 1 0 0, 0 1 0, 0 0 1 ] }
      coordIndex [ 0 1 2 -1 ] } }
    Transform { translation 0 0 5 children [
      Transform {
        translation 10 0 0
        rotation 0 0 1 1.5707963267948966
        scale 2 2 2
        children [ USE TRI ]
      } ] }
    Transform { center 1 0 0 rotation 0 0 1 3.141592653589793
      children Shape { geometry IndexedFaceSet {
        coord USE PTS coordIndex [ 2, 1, 0 ] ccw FALSE } } }
    """
    vertices, faces = scans.parse_vrml(text)
    expected = np.array([
        [1, 0, 0], [0, 1, 0], [0, 0, 1],           # as written
        [10, 2, 5], [8, 0, 5], [10, 0, 7],          # nested transforms
        [1, 0, 0], [2, -1, 0], [2, 0, 1],           # rotated about (1, 0, 0)
    ], np.float64)
    np.testing.assert_allclose(vertices, expected, atol=1e-9)
    # ccw FALSE: the third set's (2, 1, 0) is flipped to keep ccw front faces.
    np.testing.assert_array_equal(faces, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])

  def test_large_lists_take_the_numeric_path_exactly(self):
    rng = np.random.default_rng(0)
    points = np.round(rng.uniform(-100, 100, (3000, 3)), 4)
    faces = rng.integers(0, 3000, (5000, 3))
    point_text = ",\n".join(f"{x} {y} {z}" for x, y, z in points)
    index_text = ", ".join(f"{a}, {b}, {c}, -1" for a, b, c in faces)
    vertices, parsed_faces = scans.parse_vrml(
        "#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coord Coordinate "
        f"{{ point [ {point_text} ] }} coordIndex [ {index_text} ] }} }}\n")
    np.testing.assert_array_equal(vertices, points)
    np.testing.assert_array_equal(parsed_faces, faces)

  @pytest.mark.parametrize("text,detail", [
      ("", "no IndexedFaceSet"),
      ("#VRML V1.0 ascii\nSeparator { Coordinate3 { point [ 0 0 0 ] } }",
       "VRML 1.0"),
      ("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coord Coordinate "
       "{ point [ 0 0 0, 1 0 0, 0 1 0 ", "syntax"),
      ("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coord USE P "
       "coordIndex [ 0 1 2 ] } }", "USE P before DEF P"),
      ("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { "
       "coordIndex [ 0 1 2 ] } }", "without coord"),
      ("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coord Coordinate "
       "{ point [ 0 0 0, 1 0 0, 0 1 ] } coordIndex [ 0 1 2 ] } }",
       "multiple of 3"),
      ("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coord Coordinate "
       "{ point [ 0 0 0, 1 0 0, 0 1 0 ] } coordIndex [ 0 1 3 ] } }",
       "3 points"),
      ("#VRML V2.0 utf8\nShape { geometry IndexedLineSet { coord Coordinate "
       "{ point [ 0 0 0, 1 0 0 ] } coordIndex [ 0 1 ] } }",
       "no IndexedFaceSet"),
      ("#VRML V2.0 utf8\nShape { } }", "syntax"),
  ])
  def test_broken_documents_raise_bad_example(self, text, detail):
    with pytest.raises(BadExampleError) as info:
      scans.parse_vrml(text)
    assert info.value.reason == scans.UNREADABLE
    assert detail in str(info.value)


class TestReadScan:

  def test_wrl_obj_and_ply_give_the_same_mesh(self, tmp_path):
    import trimesh  # pylint: disable=g-import-not-at-top
    wrl = _write(tmp_path / "scan.wrl", SCANNER_STYLE_VRML)
    obj = _write(tmp_path / "scan.obj", _obj_text(SQUARE_AND_TRIANGLE_POINTS,
                                                  SQUARE_AND_TRIANGLE_FACES))
    ply = str(tmp_path / "scan.ply")
    trimesh.Trimesh(SQUARE_AND_TRIANGLE_POINTS, SQUARE_AND_TRIANGLE_FACES,
                    process=False).export(ply)
    for path in (wrl, obj, ply):
      mesh = scans.read_scan(path)
      assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
      np.testing.assert_allclose(mesh.vertices, SQUARE_AND_TRIANGLE_POINTS)
      # Same triangles, whatever order a format keeps them in.
      assert (sorted(map(tuple, mesh.faces.tolist()))
              == sorted(map(tuple, SQUARE_AND_TRIANGLE_FACES.tolist()))), path

  def test_obj_quads_and_texture_references_are_handled(self, tmp_path):
    # A quad with texture coordinates and a material file that is absent.
    path = _write(tmp_path / "quad.obj", """mtllib absent.mtl
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
usemtl skin
f 1/1 2/2 3/3 4/4
""")
    mesh = scans.read_scan(path)
    np.testing.assert_allclose(mesh.vertices,
                               SQUARE_AND_TRIANGLE_POINTS[:4] / 10)
    assert mesh.faces.shape == (2, 3)

  def test_gzipped_wrl_and_scale_to_mm(self, tmp_path):
    path = tmp_path / "scan.wrz"
    path.write_bytes(gzip.compress(SCANNER_STYLE_VRML.encode()))
    mesh = scans.read_scan(str(path), scale_to_mm=1000.0)
    np.testing.assert_allclose(mesh.vertices, SQUARE_AND_TRIANGLE_POINTS * 1000)

  @pytest.mark.parametrize("name,text", [
      ("empty.wrl", ""),
      ("truncated.wrl", SCANNER_STYLE_VRML[:400]),
      ("garbage.obj", "this is not a mesh\n"),
      ("nan.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"),
      ("out_of_range.obj", "v 0 0 0\nv 1 0 0\nf 1 2 7\n"),
      ("scan.xyz", "0 0 0\n"),
  ])
  def test_broken_files_raise_bad_example(self, tmp_path, name, text):
    path = _write(tmp_path / name, text)
    with pytest.raises(BadExampleError) as info:
      scans.read_scan(path)
    assert info.value.reason == scans.UNREADABLE
    assert name in str(info.value)

  def test_missing_file(self, tmp_path):
    with pytest.raises(BadExampleError, match="does not exist"):
      scans.read_scan(str(tmp_path / "absent.obj"))
