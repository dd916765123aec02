"""UI-format workflow -> API prompt, checked against the real server's /object_info and run there."""

from __future__ import annotations

import pytest

from tests.host.harness import ON_BOTH_HOSTS
from tests.host.workflow_api import WorkflowError, workflow_to_api

pytestmark = [pytest.mark.host, ON_BOTH_HOSTS]


def _node(node_id, type_, widgets=(), inputs=(), mode=0):
    return {
        "id": node_id,
        "type": type_,
        "mode": mode,
        "inputs": [{"name": name, "type": "*", "link": link} for name, link in inputs],
        "outputs": [],
        "widgets_values": list(widgets),
    }


def _core_workflow() -> dict:
    """EmptyImage -> Reroute -> ImageInvert -> SaveImage, plus a note and a muted node."""
    return {
        "nodes": [
            _node(1, "EmptyImage", widgets=[24, 16, 1, 255]),
            _node(2, "Reroute", inputs=[("", 1)]),
            _node(3, "ImageInvert", inputs=[("image", 2)]),
            _node(4, "SaveImage", widgets=["converted"], inputs=[("images", 3)]),
            _node(5, "Note", widgets=["a note for people"]),
            _node(6, "PreviewImage", inputs=[("images", 4)], mode=2),
        ],
        # [link_id, origin_id, origin_slot, target_id, target_slot, type]
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"],
                  [4, 1, 0, 6, 0, "IMAGE"]],
    }


def test_core_workflow_converts_and_runs(comfy_server, run_prompt):
    prompt = workflow_to_api(_core_workflow(), comfy_server.object_info())
    assert prompt == {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 16, "batch_size": 1, "color": 255}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"filename_prefix": "converted", "images": ["3", 0]}},
    }
    outcome = run_prompt(prompt)
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["4"]["images"][0]["filename"].startswith("converted")


def test_seed_control_value_is_skipped_and_links_override_widgets(comfy_server):
    workflow = {
        "nodes": [
            _node(7, "KSampler", widgets=[42, "randomize", 3, 7.5, "euler", "normal", 0.5],
                  inputs=[("model", 10), ("positive", None), ("negative", None), ("latent_image", None),
                          ("steps", 11)]),
            _node(8, "CheckpointLoaderSimple", widgets=["none.safetensors"]),
            _node(9, "PrimitiveInt", widgets=[9, "fixed"]),
        ],
        "links": [[10, 8, 0, 7, 0, "MODEL"], [11, 9, 0, 7, 4, "INT"]],
    }
    prompt = workflow_to_api(workflow, comfy_server.object_info())
    assert prompt["7"]["inputs"] == {
        "seed": 42, "steps": ["9", 0], "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.5,
        "model": ["8", 0],
    }


def test_unknown_and_bypassed_nodes_are_refused(comfy_server):
    info = comfy_server.object_info()
    with pytest.raises(WorkflowError, match="NoSuchNode"):
        workflow_to_api({"nodes": [_node(1, "NoSuchNode")], "links": []}, info)
    with pytest.raises(WorkflowError, match="bypassed"):
        workflow_to_api({"nodes": [_node(1, "EmptyImage", widgets=[8, 8, 1, 0], mode=4)], "links": []}, info)
