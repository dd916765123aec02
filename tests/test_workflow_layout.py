"""The shipped workflow opens with every node in view and nothing overlapping, and is the one
``tools/make_workflow.py`` builds."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "workflows" / "singer.json"
FULL_FRAME = REPO / "workflows" / "singer_full_frame.json"
TITLE_HEIGHT = 30  # LiteGraph draws a node's title bar above its 'pos'
SLOT_HEIGHT = 20
WIDGET_HEIGHT = 24
VIEWPORT = (1600, 900)  # canvas pixels of a 1920x1080 screen, less ComfyUI's menus and side bar
GAP = 10  # at least this much space between two boxes


def _make_workflow():
    spec = importlib.util.spec_from_file_location("make_workflow", REPO / "tools" / "make_workflow.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_workflow", module)  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=[SHIPPED, FULL_FRAME], ids=lambda path: path.name)
def workflow(request) -> dict:
    return json.loads(request.param.read_text())


def _boxes(workflow: dict) -> dict[str, tuple[float, float, float, float]]:
    boxes = {}
    for node in workflow["nodes"]:
        (x, y), (w, h) = node["pos"], node["size"]
        boxes[f"node {node['id']} {node['type']}"] = (x, y - TITLE_HEIGHT, x + w, y + h)
    for number, group in enumerate(workflow.get("groups", [])):
        x, y, w, h = group["bounding"]
        boxes[f"group {number} {group.get('title', '')}"] = (x, y, x + w, y + h)
    return boxes


@pytest.mark.parametrize("shipped", [SHIPPED, FULL_FRAME], ids=lambda path: path.name)
def test_both_shipped_copies_are_identical(shipped):
    assert shipped.read_bytes() == (REPO / "example_workflows" / shipped.name).read_bytes()


def test_the_shipped_workflows_are_the_generated_ones():
    make = _make_workflow()
    shipped = json.loads(SHIPPED.read_text())
    assert shipped in (make.build("stream"), make.build("images")), "run: python tools/make_workflow.py"
    assert json.loads(FULL_FRAME.read_text()) == make.build("stream", full_frame=True), "run: tools/make_workflow.py"


def test_nothing_overlaps(workflow):
    boxes = _boxes(workflow)
    for (a, (ax0, ay0, ax1, ay1)), (b, (bx0, by0, bx1, by1)) in itertools.combinations(boxes.items(), 2):
        apart = ax1 + GAP <= bx0 or bx1 + GAP <= ax0 or ay1 + GAP <= by0 or by1 + GAP <= ay0
        assert apart, f"{a} overlaps {b}"


def test_every_node_is_in_view_when_it_opens(workflow):
    view = workflow["extra"]["ds"]
    scale, (dx, dy) = view["scale"], view["offset"]
    for name, (x0, y0, x1, y1) in _boxes(workflow).items():
        left, top = (x0 + dx) * scale, (y0 + dy) * scale
        right, bottom = (x1 + dx) * scale, (y1 + dy) * scale
        assert 0 <= left and 0 <= top and right <= VIEWPORT[0] and bottom <= VIEWPORT[1], (name, view)


def test_nodes_are_tall_enough_for_their_slots_and_widgets(workflow):
    """A node smaller than its content is enlarged by the editor when it opens, which could make it overlap."""
    for node in workflow["nodes"]:
        if node["type"] == "Note":
            continue
        slots = max(len(node.get("inputs", [])), len(node.get("outputs", [])))
        widgets = len(node.get("widgets_values") or [])
        linked_widgets = sum(1 for i in node.get("inputs", []) if "widget" in i)
        needed = slots * SLOT_HEIGHT + (widgets - linked_widgets) * WIDGET_HEIGHT
        assert node["size"][1] >= needed, (node["id"], node["type"], node["size"], needed)


def test_every_link_is_consistent(workflow):
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
        assert link_id in nodes[origin]["outputs"][origin_slot]["links"]
        assert nodes[origin]["outputs"][origin_slot]["type"] == kind == nodes[target]["inputs"][target_slot]["type"]
