"""``python -m convkit draw``: the drawn geometry is convkit's own, the files are written and valid."""
import sys

import numpy as np
import pytest

import convkit
from convkit import draw
from convkit.__main__ import main as convkit_main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def influence(run, size, out_size):
    """Which input pixels each output cell reads, found by running convkit on one-hot images."""
    reads = {}
    for r in range(size[0]):
        for c in range(size[1]):
            x = np.zeros((1, *size, 1))
            x[0, r, c, 0] = 1.0
            y = run(x)
            assert y.shape[1:3] == out_size
            for oy, ox in zip(*np.nonzero(y[0, :, :, 0])):
                reads.setdefault((oy, ox), set()).add((r, c))
    return reads


def drawn_inputs(geom):
    """The input pixels the picture puts under each output cell's window (cells of kind 'input')."""
    out = {}
    for oy in range(geom.out_size[0]):
        for ox in range(geom.out_size[1]):
            cells = {rc for rc in geom.window(oy, ox) if geom.cell_kind(*rc) == "input"}
            if cells:
                out[oy, ox] = cells
    return out


@pytest.mark.parametrize("size, kernel, stride, padding, dilation", [
    ((5, 5), (3, 3), (2, 2), (1, 1), (1, 1)),
    ((5, 6), (3, 2), (1, 2), (0, 1), (2, 1)),
    ((4, 4), (2, 2), (2, 2), "same", (1, 1)),
    ((6, 5), (3, 3), (3, 1), (2, 0), (1, 2)),
])
def test_conv_picture_is_conv2d(size, kernel, stride, padding, dilation):
    geom = draw.conv_geometry_of(size, kernel, stride, padding, dilation)
    w = np.ones((*kernel, 1, 1))
    reads = influence(lambda x: convkit.conv2d(x, w, stride=stride, padding=padding, dilation=dilation),
                      size, geom.out_size)
    assert drawn_inputs(geom) == reads
    rows = range(geom.rows[0], geom.rows[1] + 1)
    cols = range(geom.cols[0], geom.cols[1] + 1)
    assert all(r in rows and c in cols for oy in range(geom.out_size[0]) for ox in range(geom.out_size[1])
               for r, c in geom.window(oy, ox)), "every window lies on the drawn grid"


@pytest.mark.parametrize("size, kernel, stride, padding, dilation, output_padding", [
    ((3, 3), (3, 3), (2, 2), (1, 1), (1, 1), (0, 0)),
    ((2, 3), (3, 2), (1, 2), (0, 0), (1, 1), (0, 1)),
    ((3, 2), (2, 3), (2, 1), (2, 1), (1, 1), (1, 0)),       # padding beyond dilation*(K-1): cropped
    ((2, 2), (3, 3), (2, 2), (0, 0), (2, 2), (1, 1)),
])
def test_transposed_picture_is_conv_transpose2d(size, kernel, stride, padding, dilation, output_padding):
    geom = draw.transposed_geometry_of(size, kernel, stride, padding, dilation, output_padding)
    w = np.ones((*kernel, 1, 1))
    reads = influence(lambda x: convkit.conv_transpose2d(x, w, stride=stride, padding=padding, dilation=dilation,
                                                         output_padding=output_padding), size, geom.out_size)
    # the picture's grid is the input spread out by the stride: input pixel (r, c) sits at (r*sh, c*sw)
    spread = {cell: {(r // stride[0], c // stride[1]) for r, c in cells}
              for cell, cells in drawn_inputs(geom).items()}
    assert spread == reads


def test_conv_files_written_and_valid(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "conv.png"
    written = draw.main(["conv", "--input", "4", "--kernel-size", "3", "--stride", "2", "--padding", "1",
                         "-o", str(png)])
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    image = pytest.importorskip("PIL.Image")
    with image.open(png) as im:
        im.verify()
    gif = tmp_path / "conv.gif"
    assert written == [str(png), str(gif)]
    with image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 4          # one frame per output cell of the 2x2 output
    assert f"wrote {png}, {gif}" in capsys.readouterr().out


def test_transposed_and_im2col_through_the_command_line(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "t.png"
    convkit_main(["draw", "transposed", "--input", "2", "--no-gif", "-o", str(png)])
    assert png.read_bytes()[:8] == PNG_SIGNATURE and not (tmp_path / "t.gif").exists()
    png = tmp_path / "im2col.png"
    convkit_main(["draw", "im2col", "-o", str(png)])
    assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_im2col_picture_uses_the_seed_example():
    assert draw.seed_image()[0, 1, 2, 1] == 16 * 1 + 4 * 1 + 2 + 1
    cols = convkit.im2col(draw.seed_image(), kernel_size=2, stride=2).astype(int)
    assert cols[0].tolist() == [1, 17, 2, 18, 5, 21, 6, 22]


@pytest.mark.parametrize("args, call", [
    (["--input", "2", "--padding", "0", "--stride", "1"], dict(stride=1, padding=0)),
    (["--stride", "0"], dict(stride=0, padding=1)),
    (["--dilation", "-1"], dict(stride=2, padding=1, dilation=-1)),
])
def test_bad_geometry_exits_2_with_conv2d_message(args, call, capsys):
    size = int(args[args.index("--input") + 1]) if "--input" in args else 5
    with pytest.raises(ValueError) as expected:
        convkit.conv2d(np.zeros((1, size, size, 1), np.float32), np.zeros((3, 3, 1, 1), np.float32), **call)
    with pytest.raises(SystemExit) as exc:
        draw.main(["conv", "--no-gif", "-o", "unused.png", *args])
    assert exc.value.code == 2
    assert str(expected.value) in capsys.readouterr().err


def test_transposed_bad_geometry_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        draw.main(["transposed", "--stride", "1", "--output-padding", "1", "-o", "unused.png"])
    assert exc.value.code == 2
    assert "expected output_padding to be smaller than stride or dilation" in capsys.readouterr().err


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exc:
        draw.main(["conv", "-o", "unused.png"])
    assert "pip install 'convkit[draw]'" in str(exc.value.code)


def test_bad_geometry_is_reported_without_matplotlib(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exc:
        draw.main(["conv", "--stride", "0", "-o", "unused.png"])
    assert exc.value.code == 2
    assert "stride" in capsys.readouterr().err
