"""Analysis → the lecture-style volume diagram (LeNet-5's ``INPUT 32x32 → C1: 6@28x28 → …``).

Each convolution or pooling output is a box (front face W×H, channels going back), the kernel a
small window on the box it reads, fully connected layers are bars; activations, BN, LRN and
dropout are named under the box they follow. 1-D nets are drawn as flat strips (length × channels).
Sizes are linear while they span less than ``LOG_ABOVE``, log-scaled beyond (VGG-16's 224 and 7
both stay visible). Where a row wraps, the window sits on the last box of the row and a dashed
arrow runs to the first box of the next. Output is SVG text or a PNG (Pillow, with the DejaVu
fonts, bold and dashes the SVG names); the same scene feeds both, and the same analysis always
gives the same bytes. No TensorFlow; matplotlib only lends its font files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from cnnbp.builder import ir
from cnnbp.builder.analysis import Analysis, fmt_shape
from cnnbp.builder.summary import human

LOG_ABOVE = 10.0          # max/min ratio beyond which an axis is log-scaled
FACE = (14.0, 150.0)      # px range of a box's front face side
DEPTH = (4.0, 70.0)       # px range of the channel axis (drawn obliquely)
BAR = (24.0, 150.0)       # px range of an FC bar's height
OBLIQUE = 0.6             # x and y shift of the depth axis per px of depth (45°, foreshortened)
GAP = 34.0
TEXT_BELOW = 28.0         # from a row's lowest box to its first text line (a window's size
                          # and stride are written under the box it is on)
DASH = "3,2"              # px on, px off: the kernel's lines and the row-wrap arrow
FONT = 11.0
CHAR_W = 6.4              # a deterministic estimate of a character's width at FONT px
ROW_WIDTH = 1500.0        # wrap into rows beyond this
RED = "#cc0000"
COLORS = {"input": "#d9d9d9", "conv": "#9fc5e8", "pool": "#f9cb9c", "global": "#f9cb9c",
          "fc": "#b6d7a8", "output": "#93c47d"}


@dataclass(frozen=True)
class Item:
    """One drawn thing: a volume (input, conv, pool output) or a bar (global pool, FC)."""

    kind: str                  # input | conv | pool | global | fc | output
    label: str                 # C1: 6@28x28
    name: str                  # the stable layer name, stage1_conv1
    shape: tuple[int, ...]
    params: int = 0
    macs: int = 0
    extras: tuple[str, ...] = ()   # the shape-keeping layers that follow (RELU, LRN…)
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None

    @property
    def is_bar(self) -> bool:
        """Whether the item is drawn as a flat bar (a vector: FC, OUTPUT) rather than a volume."""
        return len(self.shape) == 1


def items(analysis: Analysis) -> list[Item]:
    """The net as the lecture names it: INPUT, C1, S2, …, F6, OUTPUT."""
    net = analysis.network
    out = [Item("input", f"INPUT: {_volume_text(net.input_shape)}", "input", net.input_shape)]
    pending: dict | None = None
    count = 0
    for layer, stats in zip(net.layers, analysis.layers):
        if isinstance(layer, (ir.Conv, ir.Pool, ir.GlobalPool, ir.Dense)):
            if pending:
                out.append(Item(**pending))
            count += 1
            stride = getattr(layer, "stride", None)
            if isinstance(layer, ir.Conv):
                kind, prefix, kernel = "conv", "C", layer.kernel
            elif isinstance(layer, ir.Pool):
                kind, prefix, kernel = "pool", "S", layer.size
            elif isinstance(layer, ir.GlobalPool):
                kind, prefix, kernel = "global", "G", None
            else:
                kind, prefix, kernel = ("output", "", None) if layer.softmax else ("fc", "F", None)
            text = "OUTPUT" if kind == "output" else f"{prefix}{count}"
            pending = dict(kind=kind, label=f"{text}: {_volume_text(stats.output_shape)}",
                           name=stats.name, shape=stats.output_shape, params=stats.params,
                           macs=stats.macs, extras=(), kernel=kernel,
                           stride=stride if kernel else None)
        elif pending and not isinstance(layer, ir.Flatten):
            pending["params"] += stats.params
            pending["macs"] += stats.macs
            pending["extras"] += (stats.type.replace("RELU", "ReLU"),)
    if pending:
        out.append(Item(**pending))
    return out


def _volume_text(shape) -> str:
    """``(28, 28, 6)`` → ``6@28x28`` as in the LeNet figure; ``(84,)`` → ``84``."""
    return str(shape[0]) if len(shape) == 1 else f"{shape[-1]}@{fmt_shape(shape[:-1])}"


class Scale:
    """Maps sizes to px: proportional while max/min <= LOG_ABOVE, else logarithmic."""

    def __init__(self, values, lo: float, hi: float):
        self.vmin, self.vmax = min(values, default=1), max(values, default=1)
        self.lo, self.hi = lo, hi
        self.log = self.vmax / max(self.vmin, 1) > LOG_ABOVE

    def __call__(self, v: int) -> float:
        if self.log:
            t = math.log(v / self.vmin) / math.log(self.vmax / self.vmin)
            return round(self.lo + (self.hi - self.lo) * t, 1)
        return round(max(self.lo, self.hi * v / self.vmax), 1)

    @property
    def mode(self) -> str:
        """``log`` or ``linear``: how sizes were mapped to lengths, said in the drawing's note."""
        return "log" if self.log else "linear"


@dataclass
class Shape:
    """A drawing primitive in a group: ``poly`` (points), ``line`` (dashed, two points or
    more: a polyline), ``arrow`` (a filled head, three points) or ``text``."""

    kind: str
    points: tuple[tuple[float, float], ...] = ()
    fill: str = "none"
    stroke: str = "#333333"
    text: str = ""
    size: float = FONT
    bold: bool = False
    anchor: str = "middle"  # text: start | middle | end


@dataclass
class Group:
    """Shapes drawn together as one SVG ``<g>``, with its class and attributes (a layer's name, for
    tests and tooltips)."""

    cls: str
    attrs: dict[str, str]
    shapes: list[Shape] = field(default_factory=list)


@dataclass
class Scene:
    """A whole drawing in plain data: SVG and PNG are both rendered from it, so tests can pin its
    structure."""

    width: float
    height: float
    title: str
    groups: list[Group]


def _shade(color: str, factor: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{min(255, int(c * factor)):02x}" for c in (r, g, b))


def _box(x: float, y: float, w: float, h: float, d: float, color: str) -> list[Shape]:
    """A cuboid: front face (x, y, w, h), its top and right faces going back d px."""
    dx, dy = d * OBLIQUE, -d * OBLIQUE
    front = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
    top = ((x, y), (x + dx, y + dy), (x + w + dx, y + dy), (x + w, y))
    side = ((x + w, y), (x + w + dx, y + dy), (x + w + dx, y + h + dy), (x + w, y + h))
    return [Shape("poly", top, _shade(color, 1.08)), Shape("poly", side, _shade(color, 0.85)),
            Shape("poly", front, color)]


def _texts(item: Item) -> list[tuple[str, bool]]:
    lines = [(item.label, True), (item.name, False)]
    if item.extras:
        lines.append(("+ " + ", ".join(item.extras), False))
    if item.params or item.macs:
        lines.append((f"{human(item.params)} params, {human(item.macs)} MACs", False))
    return lines


def scene(analysis: Analysis) -> Scene:
    """Lay the net out left to right, wrapping into rows wider than ROW_WIDTH."""
    drawn = items(analysis)
    one_d = analysis.network.spatial_rank == 1
    volumes = [i for i in drawn if not i.is_bar]
    face = Scale([d for i in volumes for d in i.shape[:-1]], *FACE)
    depth = Scale([i.shape[-1] for i in volumes], *DEPTH)
    bar = Scale([i.shape[0] for i in drawn if i.is_bar] or [1], *BAR)

    def size(item: Item) -> tuple[float, float, float]:
        """(width, height, depth) px of the item's box."""
        if item.is_bar:
            return 12.0, bar(item.shape[0]), 0.0
        if one_d:  # a strip: length down, channels across
            return depth(item.shape[-1]), face(item.shape[0]), 0.0
        return face(item.shape[1]), face(item.shape[0]), depth(item.shape[-1])

    # Rows: each item takes its box or its widest text line, whichever is wider.
    slots = []
    for item in drawn:
        w, h, d = size(item)
        text_w = max(len(t) for t, _ in _texts(item)) * CHAR_W
        slots.append((item, w, h, d, max(w + d * OBLIQUE, text_w) + GAP))
    # As many rows as ROW_WIDTH needs, balanced so the last is not left with one item.
    total = sum(slot[4] for slot in slots)
    target = total / math.ceil(total / ROW_WIDTH)
    rows, row, used = [], [], 0.0
    for slot in slots:
        if row and used + slot[4] / 2 > target:
            rows.append(row)
            row, used = [], 0.0
        row.append(slot)
        used += slot[4]
    rows.append(row)

    groups, top, width, prev, gap_y = [], 40.0, 0.0, None, 0.0
    for r, row in enumerate(rows):
        # Boxes are centred on one line; a box's depth shifts it half up, half down.
        half = max(h / 2 + d * OBLIQUE / 2 for _, _, h, d, _ in row)
        mid = top + half
        x = 20.0
        for item, w, h, d, slot in row:
            cx = x + (slot - GAP) / 2  # centre of the slot
            bx, by = cx - (w + d * OBLIQUE) / 2, mid - h / 2 + d * OBLIQUE / 2
            kind = "bar" if item.is_bar else "volume"
            g = Group(kind, {"data-kind": item.kind, "data-name": item.name,
                             "data-label": item.label, "data-shape": fmt_shape(item.shape),
                             "data-row": str(r)})
            color = COLORS[item.kind]
            g.shapes += _box(bx, by, w, h, d, color) if d else \
                [Shape("poly", ((bx, by), (bx + w, by), (bx + w, by + h), (bx, by + h)), color)]
            if prev is not None and prev[0] != r:  # the row wrapped: link across the gap
                g.shapes += _wrap(item, prev, (bx, by, w, h, d), gap_y)
            elif item.kernel and prev is not None:
                g.shapes += _kernel(item, prev[1:6], (bx, by, w, h))
            ty = mid + half + TEXT_BELOW
            for i, (text, bold) in enumerate(_texts(item)):
                g.shapes.append(Shape("text", ((cx, ty + i * (FONT + 3)),), text=text, bold=bold,
                                      fill="#222222", stroke="none"))
            groups.append(g)
            prev = (r, item, bx, by, w, h, x + slot - GAP / 2)
            x += slot
        width = max(width, x)
        top = mid + half + TEXT_BELOW + 4 * (FONT + 3) + 24
        gap_y = top - 18  # between this row's last text line and the next row's boxes
    net = analysis.network
    title = (f"{net.name}: {fmt_shape(net.input_shape)} input, {net.classes} classes, "
             f"{analysis.total_params:,} params, {human(analysis.total_macs)} MACs "
             f"(sizes: {face.mode} spatial, {depth.mode} channels)")
    return Scene(round(max(width, len(title) * CHAR_W * 1.1 + 40)), round(top), title, groups)


def _window(item: Item, prev) -> tuple[list[Shape], tuple]:
    """The kernel's window on the input box (kernel/size of its face), its size and stride
    written above it as the AlexNet figure does; and the window's corners."""
    p_item, px, py, pw, ph = prev
    k = item.kernel
    kh = ph * min(1.0, k[0] / p_item.shape[0])
    kw = pw * min(1.0, k[1] / p_item.shape[1]) if len(k) > 1 else pw  # 1-D: every channel
    # Placed toward the lower right of the face so it does not hide the box's edges.
    wx, wy = px + pw - kw - min(4.0, (pw - kw) / 2), py + ph - kh - min(4.0, (ph - kh) / 2)
    window = ((wx, wy), (wx + kw, wy), (wx + kw, wy + kh), (wx, wy + kh))
    window = tuple((round(a, 1), round(b, 1)) for a, b in window)
    stride = item.stride or ()
    text = "x".join(map(str, k)) + (f", stride {'x'.join(map(str, stride))}"
                                    if len(set(stride)) > 1 else
                                    f", stride {stride[0]}" if stride else "")
    # under the box, right-aligned with the window: above it, the incoming lines cross it
    label = Shape("text", ((round(wx + kw, 1), round(py + ph + FONT, 1)),), fill=RED,
                  stroke="none", text=text, size=FONT - 2, anchor="end")
    return [Shape("poly", window, "none", RED), label], window


def _kernel(item: Item, prev, target) -> list[Shape]:
    """The window on the input box, with lines to the output box."""
    if prev[0].is_bar:
        return []
    shapes, window = _window(item, prev)
    tx, ty, tw, th = target
    apex = (round(tx + tw * 0.6, 1), round(ty + th * 0.6, 1))
    return shapes + [Shape("line", (window[1], apex), stroke=RED),
                     Shape("line", (window[2], apex), stroke=RED)]


def _wrap(item: Item, prev, target, gap_y: float) -> list[Shape]:
    """Across a row break: the window on the row's last box (when the item has a kernel), and
    a dashed arrow from it (or from that box) right into the gap after it, down between the
    rows, left above the item and down onto its top face."""
    _, p_item, px, py, pw, ph, right = prev
    shapes, start = [], (px + pw, py + ph / 2)
    color = "#555555"
    if item.kernel and not p_item.is_bar:
        shapes, window = _window(item, (p_item, px, py, pw, ph))
        start, color = window[1], RED
    tx, ty, tw, th, td = target
    ax, ay = tx + tw * 0.6, ty - td * OBLIQUE - 2  # above the box, its top face included
    route = (start, (right, start[1]), (right, gap_y), (ax, gap_y), (ax, ay - 6))
    route = tuple((round(a, 1), round(b, 1)) for a, b in route)
    head = ((round(ax - 4, 1), round(ay - 7, 1)), (round(ax + 4, 1), round(ay - 7, 1)),
            (round(ax, 1), round(ay, 1)))
    return shapes + [Shape("line", route, stroke=color), Shape("arrow", head, color, color)]


def to_svg(s: Scene) -> str:
    """The scene as standalone SVG text (no scripts, fonts or external references)."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{s.width}" height="{s.height}" '
           f'viewBox="0 0 {s.width} {s.height}" font-family="DejaVu Sans, Arial, sans-serif" '
           f'font-size="{FONT:g}">',
           f'<rect width="{s.width}" height="{s.height}" fill="#ffffff"/>',
           f'<text class="title" x="20" y="22" font-size="{FONT + 2:g}" font-weight="bold">'
           f'{escape(s.title)}</text>']
    for g in s.groups:
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in g.attrs.items())
        out.append(f'<g class="{g.cls}"{attrs}>')
        for sh in g.shapes:
            pts = " ".join(f"{round(x, 1):g},{round(y, 1):g}" for x, y in sh.points)
            if sh.kind == "poly":
                out.append(f'<polygon points="{pts}" fill="{sh.fill}" stroke="{sh.stroke}"/>')
            elif sh.kind == "arrow":
                out.append(f'<polygon points="{pts}" fill="{sh.fill}" stroke="none"/>')
            elif sh.kind == "line" and len(sh.points) == 2:
                (x1, y1), (x2, y2) = sh.points
                x1, y1, x2, y2 = (round(v, 1) for v in (x1, y1, x2, y2))
                out.append(f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" '
                           f'stroke="{sh.stroke}" stroke-dasharray="{DASH}"/>')
            elif sh.kind == "line":
                out.append(f'<polyline points="{pts}" fill="none" stroke="{sh.stroke}" '
                           f'stroke-dasharray="{DASH}"/>')
            else:
                (x, y), = sh.points
                x, y = round(x, 1), round(y, 1)
                weight = ' font-weight="bold"' if sh.bold else ""
                size = f' font-size="{sh.size:g}"' if sh.size != FONT else ""
                color = f' fill="{sh.fill}"' if sh.fill not in ("#222222", "none") else ""
                out.append(f'<text x="{x:g}" y="{y:g}" text-anchor="{sh.anchor}"{weight}{size}'
                           f'{color}>{escape(sh.text)}</text>')
        out.append("</g>")
    out.append("</svg>\n")
    return "\n".join(out)


def fonts(size: float, zoom: float):
    """(regular, bold) DejaVu Sans at ``size`` px times ``zoom``: the face the SVG names, from
    the system or from the copy matplotlib ships (found without importing matplotlib), so the
    PNG has the SVG's letters and bold; Pillow's own font when neither is there."""
    import importlib.util

    from PIL import ImageFont
    folders = ["/usr/share/fonts/truetype/dejavu"]
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.submodule_search_locations:
        folders.append(str(Path(list(spec.submodule_search_locations)[0], "mpl-data", "fonts",
                                "ttf")))
    for folder in folders:
        try:
            return (ImageFont.truetype(str(Path(folder, "DejaVuSans.ttf")), size * zoom),
                    ImageFont.truetype(str(Path(folder, "DejaVuSans-Bold.ttf")), size * zoom))
        except OSError:
            continue
    return ImageFont.load_default(size * zoom), ImageFont.load_default(size * zoom)


def dashes(points, on: float, off: float):
    """A polyline → the (start, end) of each dash, the pattern carried across its corners as
    an SVG renderer does."""
    out, phase = [], 0.0  # distance into the current on+off period
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        length = math.hypot(x2 - x1, y2 - y1)
        at = 0.0
        while at < length:
            step = min(length - at, (on - phase) if phase < on else (on + off - phase))
            if phase < on:
                t0, t1 = at / length, (at + step) / length
                out.append(((x1 + (x2 - x1) * t0, y1 + (y2 - y1) * t0),
                            (x1 + (x2 - x1) * t1, y1 + (y2 - y1) * t1)))
            at += step
            phase = (phase + step) % (on + off)
    return out


def to_png(s: Scene, zoom: float = 2.0) -> bytes:
    """The scene rasterised by Pillow at ``zoom`` (2: sharp on high-DPI screens and in print),
    with the SVG's font, bold, sizes, anchors and dashes."""
    import io

    from PIL import Image, ImageDraw
    im = Image.new("RGB", (int(s.width * zoom), int(s.height * zoom)), "white")
    pen = ImageDraw.Draw(im)
    cache = {}

    def font(size, bold):
        if size not in cache:
            cache[size] = fonts(size, zoom)
        return cache[size][bold]

    def z(points):
        return [(x * zoom, y * zoom) for x, y in points]

    on, off = (float(v) * zoom for v in DASH.split(","))
    anchors = {"start": "ls", "middle": "ms", "end": "rs"}
    pen.text((20 * zoom, 22 * zoom), s.title, fill="#000000", font=font(FONT + 2, True),
             anchor="ls")
    for g in s.groups:
        for sh in g.shapes:
            if sh.kind == "poly":
                pen.polygon(z(sh.points), fill=None if sh.fill == "none" else sh.fill,
                            outline=sh.stroke, width=max(1, round(zoom)))
            elif sh.kind == "arrow":
                pen.polygon(z(sh.points), fill=sh.fill)
            elif sh.kind == "line":
                for dash in dashes(z(sh.points), on, off):
                    pen.line(dash, fill=sh.stroke, width=max(1, round(zoom)))
            else:
                pen.text(z(sh.points)[0], sh.text, fill=sh.fill, anchor=anchors[sh.anchor],
                         font=font(sh.size, sh.bold))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def svg(analysis: Analysis) -> str:
    """The net's volume diagram as SVG text."""
    return to_svg(scene(analysis))


def write(analysis: Analysis, path: str | Path) -> Path:
    """Write the drawing to ``path``: ``.svg`` or ``.png`` (atomically)."""
    from cnnbp.contract.atomic import atomic_path, write_text
    from cnnbp.contract.errors import UsageError
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        write_text(path, svg(analysis))
    elif suffix == ".png":
        with atomic_path(path) as tmp:
            tmp.write_bytes(to_png(scene(analysis)))
    else:
        raise UsageError(f"-o {path}: the drawing is written as .svg or .png, not "
                         f"{suffix or 'a file without a suffix'!r}; name the file net.svg or "
                         "net.png")
    return path
