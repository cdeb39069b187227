"""``python -m convkit draw``: pictures of the convolution arithmetic (after vdumoulin/conv_arithmetic).

    python -m convkit draw conv --input 5 --kernel-size 3 --stride 2 --padding 1      # conv.png, conv.gif
    python -m convkit draw transposed --input 3 --kernel-size 3 --stride 2 --padding 1
    python -m convkit draw im2col                                                      # the seed's example

``conv`` draws the sliding window over the padded input (dilated taps as separate cells) and the output
cell it fills; ``transposed`` draws a transposed convolution as the direct convolution it equals: the input
spread out by the stride (zeros between its pixels), padded by ``dilation*(K-1) - padding`` (plus
``output_padding`` at the bottom/right), a stride-1 window.  The PNG shows the frames side by side, the GIF
(when Pillow is installed) animates them.  The output size drawn is the shape of the array that
``convkit.conv2d`` / ``convkit.conv_transpose2d`` return for these arguments, and an impossible geometry
gets their ValueError.  ``im2col`` draws the seed's 1x4x4x2 example, kernel 2, stride 2: the image's
windows, each in its colour, and the rows of ``convkit.im2col``'s matrix they become.

matplotlib is imported only here (``pip install 'convkit[draw]'``).
"""
import argparse
import dataclasses
import sys
import textwrap
from typing import List, Tuple

import numpy as np

import convkit
from convkit._validation import conv_geometry

MAX_INPUT = 16              # a picture, not a data set: at most 16x16 input cells
MAX_PNG_FRAMES = 16         # more output cells than this: the PNG shows an evenly spaced selection
COLOURS = {"input": "#9ecae1", "padding": "#ffffff", "inserted": "#eeeeee", "window": "#08519c",
           "done": "#a1d99b", "current": "#238b45", "output": "#ffffff"}


@dataclasses.dataclass
class Geometry:
    """Where each output cell's window lies on the drawn grid (rows/cols ``lo..hi`` of the input's frame)."""
    title: str
    out_size: Tuple[int, int]
    rows: Tuple[int, int]               # first and last grid row drawn, in input coordinates
    cols: Tuple[int, int]
    cell_kind: object                   # (r, c) -> "input" | "padding" | "inserted"
    window: object                      # (oy, ox) -> list of (r, c)


def conv_geometry_of(size, kernel, stride, padding, dilation):
    """conv2d's geometry; its output size is the shape convkit.conv2d returns (ValueError as conv2d's)."""
    size, kernel = _pair(size), _pair(kernel)
    out = convkit.conv2d(np.zeros((1, *size, 1), np.float32), np.zeros((*kernel, 1, 1), np.float32),
                         stride=stride, padding=padding, dilation=dilation).shape[1:3]
    (sh, sw), (dh, dw), (pt, pb, pl, pr), _ = conv_geometry(size, kernel, stride, padding, dilation)

    def kind(r, c):
        return "input" if 0 <= r < size[0] and 0 <= c < size[1] else "padding"

    def window(oy, ox):
        return [(oy * sh - pt + i * dh, ox * sw - pl + j * dw) for i in range(kernel[0]) for j in range(kernel[1])]

    title = (f"conv2d: input {size[0]}x{size[1]}, kernel {kernel[0]}x{kernel[1]}, stride ({sh}, {sw}), "
             f"padding ({pt}, {pb}, {pl}, {pr}), dilation ({dh}, {dw}) -> output {out[0]}x{out[1]}")
    return Geometry(title, out, (-pt, size[0] - 1 + pb), (-pl, size[1] - 1 + pr), kind, window)


def transposed_geometry_of(size, kernel, stride, padding, dilation, output_padding):
    """conv_transpose2d as a stride-1 convolution over the input spread out by the stride; its output
    size is the shape convkit.conv_transpose2d returns (ValueError as conv_transpose2d's)."""
    size, kernel = _pair(size), _pair(kernel)
    out = convkit.conv_transpose2d(np.zeros((1, *size, 1), np.float32), np.zeros((*kernel, 1, 1), np.float32),
                                   stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation).shape[1:3]
    s, p, d = (_pair(v) for v in (stride, padding, dilation))
    # output cell o reads spread-out rows o - q + i*d, q = d*(K-1) - p (the equivalent convolution's padding)
    q = [d[a] * (kernel[a] - 1) - p[a] for a in (0, 1)]
    spread = [(size[a] - 1) * s[a] + 1 for a in (0, 1)]

    def kind(r, c):
        if not (0 <= r < spread[0] and 0 <= c < spread[1]):
            return "padding"
        return "input" if r % s[0] == 0 and c % s[1] == 0 else "inserted"

    def window(oy, ox):
        return [(oy - q[0] + i * d[0], ox - q[1] + j * d[1]) for i in range(kernel[0]) for j in range(kernel[1])]

    last = [out[a] - 1 - q[a] + d[a] * (kernel[a] - 1) for a in (0, 1)]
    title = (f"conv_transpose2d: input {size[0]}x{size[1]}, kernel {kernel[0]}x{kernel[1]}, stride {s}, "
             f"padding {p}, output_padding {_pair(output_padding)}, dilation {d} -> output {out[0]}x{out[1]}")
    return Geometry(title, out, (min(0, -q[0]), max(spread[0] - 1, last[0])),
                    (min(0, -q[1]), max(spread[1] - 1, last[1])), kind, window)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _cell(ax, x, y, face, edge="#555555", style="-", alpha=1.0, text=None):
    from matplotlib.patches import Rectangle
    ax.add_patch(Rectangle((x, y), 1, 1, facecolor=face, edgecolor=edge, linestyle=style, alpha=alpha,
                           linewidth=0.8))
    if text is not None:
        ax.text(x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=7)


def draw_frame(ax, geom, oy, ox):
    """The grid with output cell (oy, ox)'s window on it, and the output grid with that cell filling."""
    ax.clear()
    (r0, r1), (c0, c1) = geom.rows, geom.cols
    styles = {"input": "-", "padding": "--", "inserted": ":"}
    for r in range(r0, r1 + 1):
        for c in range(c0, c1 + 1):
            kind = geom.cell_kind(r, c)
            _cell(ax, c - c0, r - r0, COLOURS[kind], style=styles[kind])
    for r, c in geom.window(oy, ox):
        _cell(ax, c - c0, r - r0, COLOURS["window"], alpha=0.55)
    left = c1 - c0 + 3                       # the output grid, two cells right of the input's
    hout, wout = geom.out_size
    for y in range(hout):
        for x in range(wout):
            face = "current" if (y, x) == (oy, ox) else "done" if (y, x) < (oy, ox) else "output"
            _cell(ax, left + x, y, COLOURS[face])
    ax.annotate("", xy=(left - 0.3, hout / 2), xytext=(c1 - c0 + 1.3, hout / 2),
                arrowprops={"arrowstyle": "->", "color": "#555555"})
    ax.set_xlim(-0.5, left + wout + 0.5)
    ax.set_ylim(max(r1 - r0 + 1, hout) + 0.5, -0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"output ({oy}, {ox})", fontsize=8)


def _legend(fig, transposed, ncol=None):
    from matplotlib.patches import Patch
    items = [("input", "input"), ("padding", "padding (zeros)")]
    if transposed:
        items.append(("inserted", "zeros inserted by the stride"))
    items += [("window", "kernel taps"), ("current", "output cell being computed"), ("done", "already computed")]
    fig.legend(handles=[Patch(facecolor=COLOURS[k], edgecolor="#555555", label=t) for k, t in items],
               loc="lower center", ncol=ncol or len(items), fontsize=7, frameon=False)


def draw_geometry(geom, png, gif=None):
    """The PNG (frames side by side) and, when ``gif`` is given, the animated GIF of every frame."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    transposed = geom.title.startswith("conv_transpose2d")
    cells = [(y, x) for y in range(geom.out_size[0]) for x in range(geom.out_size[1])]
    shown = [cells[i] for i in np.linspace(0, len(cells) - 1, min(len(cells), MAX_PNG_FRAMES)).round().astype(int)]
    ncols = min(len(shown), 4)
    nrows = -(-len(shown) // ncols)
    width = (geom.cols[1] - geom.cols[0] + geom.out_size[1] + 5) * 0.3
    height = (max(geom.rows[1] - geom.rows[0] + 1, geom.out_size[0]) + 2) * 0.3
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * width, nrows * height + 1.0), squeeze=False)
    for ax, (oy, ox) in zip(axes.flat, shown):
        draw_frame(ax, geom, oy, ox)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    fig.suptitle(geom.title + ("" if len(shown) == len(cells) else f" ({len(shown)} of {len(cells)} frames)"),
                 fontsize=9)
    _legend(fig, transposed)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(png, dpi=100)
    plt.close(fig)
    if gif is not None:
        from matplotlib.animation import FuncAnimation, PillowWriter
        fig, ax = plt.subplots(figsize=(max(width + 0.5, 6.0), height + 1.6))
        fig.suptitle(textwrap.fill(geom.title, 80), fontsize=7)
        _legend(fig, transposed, ncol=3)
        fig.tight_layout(rect=(0, 0.12, 1, 0.9))
        anim = FuncAnimation(fig, lambda i: draw_frame(ax, geom, *cells[i]), frames=len(cells))
        anim.save(gif, writer=PillowWriter(fps=2), dpi=90)
        plt.close(fig)


def seed_image():
    """The seed's 1x4x4x2 image, x[0, h, w, c] = 16c + 4h + w + 1."""
    h, w, c = np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij")
    return (16 * c + 4 * h + w + 1).astype(np.float32)[None]


def draw_im2col(png):
    """The seed's example: each 2x2 window of both channels in its colour, and convkit.im2col's matrix,
    one row per window in the same colour, each row labelled with its window."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = seed_image()
    k, s = 2, 2
    cols = convkit.im2col(x, kernel_size=k, stride=s).astype(int)        # (4, 8): rows = windows
    wout = (x.shape[2] - k) // s + 1
    palette = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(12, 4.2))
    for ch in range(2):
        left = ch * 5.5
        ax.text(left + 2, -0.6, f"channel {ch}", ha="center", fontsize=9)
        for h in range(4):
            for w in range(4):
                row = (h // s) * wout + (w // s)                              # the window holding (h, w)
                _cell(ax, left + w, h, palette[row], alpha=0.45, text=int(x[0, h, w, ch]))
    ax.annotate("", xy=(12.2, 2), xytext=(10.3, 2), arrowprops={"arrowstyle": "->", "lw": 1.5})
    ax.text(11.25, 1.6, "im2col", ha="center", fontsize=9)
    left = 15.5
    for j in range(cols.shape[1]):
        kh, kw, c = j // (k * 2), (j // 2) % k, j % 2
        ax.text(left + j + 0.5, -0.3, f"({kh},{kw},{c})", ha="center", fontsize=6.5, rotation=45)
    for i in range(cols.shape[0]):
        oy, ox = divmod(i, wout)
        ax.text(left - 0.2, i + 0.5, f"row {i}: window ({oy}, {ox})", ha="right", va="center", fontsize=8,
                color=palette[i])
        for j in range(cols.shape[1]):
            _cell(ax, left + j, i, palette[i], alpha=0.45, text=cols[i, j])
    ax.text(left + 4, 4.8, "columns (kh, kw, c), c fastest", ha="center", fontsize=8)
    ax.set_xlim(-0.5, left + cols.shape[1] + 0.5)
    ax.set_ylim(5.3, -1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("The seed's im2col example: NHWC 1x4x4x2, x[0,h,w,c] = 16c + 4h + w + 1, kernel 2x2, stride 2 "
                 "-> convkit.im2col: (Hout*Wout) x (KH*KW*C) = 4 x 8", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def size_arg(text):
    """'3' -> 3, '3,2' -> (3, 2): passed to convkit as written, so its errors quote the user's value."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or two ints 'h,w', got {text!r}") from None
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected an int or two ints 'h,w', got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def padding_arg(text):
    return text if text in ("same", "valid") else size_arg(text)


def make_parser():
    parser = argparse.ArgumentParser(prog="python -m convkit draw", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["conv", "transposed", "im2col"], nargs="?", default="conv")
    parser.add_argument("--input", type=size_arg, default=None, help="input height[,width] (default 5; 3 transposed)")
    parser.add_argument("--kernel-size", type=size_arg, default=3, help="int or 'h,w' (default 3)")
    parser.add_argument("--stride", type=size_arg, default=2, help="int or 'h,w' (default 2)")
    parser.add_argument("--padding", type=padding_arg, default=1,
                        help="int, 'h,w', or for conv 'same'/'valid' (default 1)")
    parser.add_argument("--dilation", type=size_arg, default=1, help="int or 'h,w' (default 1)")
    parser.add_argument("--output-padding", type=size_arg, default=0, help="transposed only (default 0)")
    parser.add_argument("-o", "--output", metavar="PNG", help="the PNG to write (default KIND.png); the GIF "
                        "goes beside it with the suffix .gif")
    parser.add_argument("--no-gif", action="store_true", help="only the PNG")
    return parser


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("python -m convkit draw needs matplotlib: pip install 'convkit[draw]'")


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    png = args.output or f"{args.kind}.png"
    if args.kind == "im2col":
        _require_matplotlib()
        draw_im2col(png)
        print(f"wrote {png}")
        return [png]
    size = _pair(args.input or (3 if args.kind == "transposed" else 5))
    if max(size) > MAX_INPUT:
        parser.error(f"expected --input of at most {MAX_INPUT} (a picture), got {size}")
    try:
        if args.kind == "conv":
            geom = conv_geometry_of(size, args.kernel_size, args.stride, args.padding, args.dilation)
        else:
            if isinstance(args.padding, str):
                parser.error(f"expected --padding to be an int or 'h,w' for transposed, got {args.padding!r}")
            geom = transposed_geometry_of(size, args.kernel_size, args.stride, args.padding, args.dilation,
                                          args.output_padding)
    except ValueError as exc:
        parser.exit(2, f"python -m convkit draw: error: {exc}\n")
    _require_matplotlib()           # after the geometry: a wrong argument is reported with or without it
    gif = None
    if not args.no_gif:
        try:
            import PIL  # noqa: F401
            gif = str(png)[:-4] + ".gif" if str(png).endswith(".png") else f"{png}.gif"
        except ImportError:
            print("note: Pillow is not installed, so no animated GIF (pip install 'convkit[draw]')", file=sys.stderr)
    draw_geometry(geom, png, gif)
    written: List[str] = [png] + ([gif] if gif else [])
    print("wrote " + ", ".join(map(str, written)))
    return written
