"""``cnnbp check``, ``show``, ``list`` and ``draw``: what each prints or writes for a small
net whose figures are worked out by hand (410 params: 4 * (3*3 + 1) + 36 * 10 + 10)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from cnnbp.commands import check, draw, show
from cnnbp.commands import list as list_command
from cnnbp.commands.assemble import parse, parser
from tests.conftest import SHIPPED

NET = "INPUT(8x8x1)-CONV(4,3)-RELU-POOL-FC(10)-SOFTMAX"


def test_check_prints_the_totals(capsys):
    args = parse(parser(), ["check", "-e", NET])
    assert args.run is check.run and check.run(args) == 0
    assert capsys.readouterr().out == ("expression: ok — 8x8x1 input, 10 classes, 2 weight "
                                       "layers, 410 params, 1.7K MACs, receptive field 8x8\n")


def test_show_prints_a_row_per_layer_and_the_total(capsys):
    args = parse(parser(), ["show", "-e", NET])
    assert args.run is show.run and show.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split()[1] for line in lines if line.startswith("[") and len(line.split()) > 2]
    assert rows == ["stage1_conv1", "stage1_relu", "stage1_pool", "flatten", "predictions"]
    assert any(line.split()[:2] == ["total", "410"] for line in lines)


def test_list_names_every_shipped_blueprint_once(capsys):
    args = parse(parser(), ["list"])
    assert args.run is list_command.run and list_command.run(args) == 0
    *rows, hint = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in rows] == SHIPPED  # the files in blueprints/, sorted
    assert hint == "start from one: cnnbp show NAME --yaml > my.yaml"


def test_draw_writes_an_svg_and_says_where(tmp_path, capsys):
    out = tmp_path / "net.svg"
    args = parse(parser(), ["draw", "-e", NET, "-o", str(out)])
    assert args.run is draw.run and draw.run(args) == 0
    assert capsys.readouterr().out == f"expression: wrote {out}\n"
    assert ET.parse(out).getroot().tag == "{http://www.w3.org/2000/svg}svg"
