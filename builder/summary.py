"""Analysis → text for people: the per-layer table and the one-line summary."""
from __future__ import annotations

from .analysis import Analysis, fmt_shape


def human(n: float) -> str:
    """Short magnitude: 15.47G, 86.7M, 760.

    >>> human(15_470_264_320), human(86_704_128), human(760)
    ('15.47G', '86.7M', '760')
    """
    for unit, scale, digits in (("G", 1e9, 2), ("M", 1e6, 1), ("K", 1e3, 1)):
        if n >= scale:
            return f"{n / scale:.{digits}f}{unit}"
    return f"{n:g}"


def _bytes(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def summary(a: Analysis) -> str:
    """One line: what ``cnnbp check`` prints when the blueprint is sound."""
    net = a.network
    weighted = sum(1 for s in a.layers if s.params and s.type in ("CONV", "FC"))
    rf = fmt_shape(a.layers[-1].receptive_field)
    if len(net.input_shape) == 2:  # say how a 2-D-looking size was read
        length, channels = net.input_shape
        shape = f"1-D input of length {length} with {channels} channel{'s' * (channels > 1)}"
        if channels > 4:
            shape += f" (for a {length}x{channels} image write {length}x{channels}x1 or x3)"
    else:
        shape = f"{fmt_shape(net.input_shape)} input"
    return (f"{net.name}: ok — {shape}, {net.classes} classes, "
            f"{weighted} weight layers, {a.total_params:,} params, {human(a.total_macs)} MACs, "
            f"receptive field {rf}")


def table(a: Analysis) -> str:
    """The per-layer listing in the style of the lecture tables."""
    net = a.network
    rows = [("", "INPUT", "", "", "", "", "")]
    shapes = [f"[{fmt_shape(net.input_shape)}]"]
    for s in a.layers:
        shapes.append(f"[{fmt_shape(s.output_shape)}]")
        rows.append((s.name, s.type, s.description, f"{s.params:,}" if s.params else "",
                     human(s.macs) if s.macs else "", fmt_shape(s.receptive_field),
                     _bytes(s.memory)))
    head = ("output", "layer", "type", "what", "params", "MACs", "RF", "memory")
    cells = [(shape, *row) for shape, row in zip(shapes, rows)]
    cells.append(("", "total", "", "", f"{a.total_params:,}", human(a.total_macs), "",
                  _bytes(a.total_memory)))
    widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
    right = {4, 5, 6, 7}

    def line(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    title = f"{net.name}: {fmt_shape(net.input_shape)} input, {net.classes} classes"
    rule = "-" * len(line(head))
    return "\n".join([title, line(head), rule, *map(line, cells[:-1]), rule, line(cells[-1])])
