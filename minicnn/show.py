"""Pictures of what a trained network sees: `python -m minicnn show lenet --load lenet.npz [--index I] [--out DIR]`.

Writes PNG files (matplotlib) into the output directory:
    image.png                  the test image as the network receives it (resized), its true class, and the
                               predicted probability of each of the ten classes
    filters.png                the first convolution's filters, one tile per (output, input) channel pair, all on
                               one colour scale centred on 0 (red positive, blue negative), so tiles compare
    features-NN-<layer>.png    the feature maps of every convolution and pooling layer (NN: the order in which the
                               layers run), one tile per channel (at most MAX_CHANNELS), each tile on its own scale
Every picture's title (also stored as the PNG's "Title" text) names the layer and its output shape.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import autograd, nn
from .autograd import NDArray
from .data import CLASS_NAMES, Compose, Resize, ToTensor
from .plot import require_matplotlib

MAX_CHANNELS = 64  # a readable 8x8 grid; wider layers show their first 64 channels
TILE_INCHES = 1.1
DPI = 100
_PICTURED = (nn.Conv2D, nn.MaxPool2D, nn.AvgPool2D, nn.GlobalAvgPool2D)


class _Recorder:
    """An `nn.observe` observer that keeps the output of every convolution and pooling layer, in running order."""

    def __init__(self):
        self.maps: list[tuple[str, np.ndarray]] = []

    def after(self, block, inputs, output, **note) -> None:
        if isinstance(block, _PICTURED):
            self.maps.append((block.name, output.asnumpy()))


def prepare(image: np.ndarray, settings: dict, ctx) -> NDArray:
    """One uint8 (H, W) image -> the (1, 1, H', W') float tensor the network was trained on (resize, then /255)."""
    steps = ([Resize(settings["resize"])] if settings.get("resize") else []) + [ToTensor(settings["dtype"])]
    return NDArray(ctx.backend.asarray(Compose(steps)(np.asarray(image)[None])))


def feature_maps(net, x: NDArray) -> tuple[list[tuple[str, np.ndarray]], np.ndarray]:
    """([(layer name, output (1, C, H, W))] for every convolution and pooling layer at any depth, in the order
    they run; the class probabilities (softmax of the output)), in prediction mode (dropout off)."""
    recorder = _Recorder()
    with autograd.pause(train_mode=False), nn.observe(recorder):
        logits = net(x).asnumpy()[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    return recorder.maps, p / p.sum()


def _grid(n: int) -> tuple[int, int]:
    """(rows, cols) of the squarest grid holding n tiles, wider than tall."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def figure_size(rows: int, cols: int) -> tuple[float, float]:
    """Inches of a tile grid: TILE_INCHES per tile (at least 4.5 inches wide, for the title) plus 0.7 inch for the
    title; the PNG is that times DPI pixels."""
    return max(cols * TILE_INCHES, 4.5), rows * TILE_INCHES + 0.7


def _save(plt, fig, path: Path | None, title: str):
    """The figure titled, written to `path` (then closed; the path is returned), or the figure itself when path
    is None (a notebook shows it inline)."""
    fig.suptitle(title, fontsize=9)
    if path is None:
        return fig
    fig.savefig(path, dpi=DPI, metadata={"Title": title})
    plt.close(fig)
    return path


def _tiles(plt, tiles: np.ndarray, labels: list[str], title: str, path: Path | None, shared_scale: bool):
    """tiles (K, H, W) as a grid of small images; shared_scale: one colour scale centred on 0 for all tiles."""
    rows, cols = _grid(len(tiles))
    width, height = figure_size(rows, cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(top=1 - 0.6 / height, bottom=0.02, left=0.02, right=0.98, hspace=0.35)  # title room
    limit = float(np.abs(tiles).max()) or 1.0
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(tiles):
            continue
        if shared_scale:
            ax.imshow(tiles[k], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        else:
            ax.imshow(tiles[k], cmap="viridis", interpolation="nearest")
        ax.set_title(labels[k], fontsize=7)
    return _save(plt, fig, path, title)


def draw_filters(plt, weight: np.ndarray, layer: str, path: Path | None):
    """weight (O, C, KH, KW) of a convolution: one tile per (output, input) channel pair."""
    o, c = weight.shape[:2]
    tiles = weight.reshape(o * c, *weight.shape[2:])
    labels = [f"{i}" if c == 1 else f"{i},{j}" for i in range(o) for j in range(c)]
    title = f"{layer} filters: weight {tuple(weight.shape)}, red > 0 > blue"
    return _tiles(plt, tiles, labels, title, path, shared_scale=True)


def draw_feature_maps(plt, layer: str, output: np.ndarray, path: Path | None):
    """output (1, C, H, W): one tile per channel, or, for 1x1 maps, one grid cell per channel."""
    channels = output.shape[1]
    shown = min(channels, MAX_CHANNELS)
    title = f"{layer}: output {tuple(output.shape)}"
    if output.shape[2:] == (1, 1):  # e.g. global average pooling: one number per channel
        rows, cols = _grid(channels)
        values = np.full(rows * cols, np.nan)
        values[:channels] = output[0, :, 0, 0]
        fig, ax = plt.subplots(figsize=figure_size(3, 3))
        im = ax.imshow(values.reshape(rows, cols), cmap="viridis", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax)
        return _save(plt, fig, path, f"{title}, one cell per channel")
    if shown < channels:
        title += f", first {shown} of {channels} channels"
    labels = [f"ch {k}" for k in range(shown)]
    return _tiles(plt, output[0, :shown], labels, title, path, shared_scale=False)


def draw_image(plt, x: np.ndarray, true: int, probs: np.ndarray, index: int, path: Path | None):
    """The input (H, W) and a bar per class with its predicted probability; the true class's bar in green."""
    predicted = int(probs.argmax())
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(8, 3.6), gridspec_kw={"width_ratios": [1, 1.3]})
    ax_img.imshow(x, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_img.axis("off")
    ax_img.set_title(f"input {x.shape[0]}x{x.shape[1]}", fontsize=8)
    colours = ["tab:green" if k == true else "tab:gray" for k in range(len(CLASS_NAMES))]
    ax_bar.barh(range(len(CLASS_NAMES)), probs, color=colours)
    ax_bar.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES, fontsize=8)
    ax_bar.invert_yaxis()
    ax_bar.set_xlim(0, 1)
    ax_bar.set_xlabel("predicted probability", fontsize=8)
    verdict = "right" if predicted == true else "wrong"
    title = (
        f"test image {index}: true {CLASS_NAMES[true]}, predicted {CLASS_NAMES[predicted]} "
        f"({probs[predicted]:.1%}, {verdict})"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return _save(plt, fig, path, title)


def first_conv(net) -> nn.Conv2D | None:
    """The first Conv2D in definition order, at any depth."""
    stack = [net]
    while stack:
        b = stack.pop(0)
        if isinstance(b, nn.Conv2D):
            return b
        stack[:0] = b.children()
    return None


def pictures(
    net, image: np.ndarray, label: int, index: int = 0, resize=None, ctx=None, dtype="float32", max_maps=None
) -> list:
    """The pictures of `write_pictures` as matplotlib figures, for a notebook: the image and its prediction, the
    first convolution's filters, and the feature maps of every convolution and pooling layer (the first
    `max_maps` of them, when given)."""
    from .device import cpu

    plt = require_matplotlib()
    x = prepare(image, {"resize": resize, "dtype": dtype}, ctx or cpu())
    maps, probs = feature_maps(net, x)
    figures = [draw_image(plt, x.asnumpy()[0, 0], int(label), probs, index, None)]
    conv = first_conv(net)
    if conv is not None:
        figures.append(draw_filters(plt, conv.weight.data().asnumpy(), conv.name, None))
    figures += [draw_feature_maps(plt, layer, output, None) for layer, output in maps[:max_maps]]
    return figures


def write_pictures(net, settings: dict, image: np.ndarray, label: int, index: int, out_dir, ctx) -> list[Path]:
    """Draw image.png, filters.png and one features-NN-<layer>.png per convolution and pooling layer into out_dir."""
    plt = require_matplotlib()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = prepare(image, settings, ctx)
    maps, probs = feature_maps(net, x)
    paths = [draw_image(plt, x.asnumpy()[0, 0], int(label), probs, index, out_dir / "image.png")]
    conv = first_conv(net)
    if conv is not None:
        paths.append(draw_filters(plt, conv.weight.data().asnumpy(), conv.name, out_dir / "filters.png"))
    width = max(2, len(str(len(maps))))  # names sort in running order
    for k, (layer, output) in enumerate(maps, 1):
        paths.append(draw_feature_maps(plt, layer, output, out_dir / f"features-{k:0{width}d}-{layer}.png"))
    return paths
