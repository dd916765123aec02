"""Helpers for tests that drive the pack inside a real ComfyUI server.

The server side lives in ``tools/comfy_host.py``; this module loads it and
adds a small builder for API-format prompts.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Which ComfyUI hosts a server test runs on (tests/host/conftest.py; the closest mark wins, none = 0.3.75).
# Both: what touches the host (loaders, sampler, decode, Save Video, previews, memory manager, /free, cancel, bad
# inputs, the shipped workflow). 0.3.75 only: numerics of the pack's own code that a second host cannot change,
# kept off the second host for CI time.
ON_BOTH_HOSTS = pytest.mark.hosts("0.3.75", "0.28.2")
ON_0_3_75_ONLY = pytest.mark.hosts("0.3.75")


def load_comfy_host():
    """Import ``tools/comfy_host.py`` (``tools`` is not a package)."""
    name = "singer_comfy_host"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / "comfy_host.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class Prompt:
    """Builds an API-format prompt: ``{node_id: {"class_type": ..., "inputs": {...}}}``."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}

    def add(self, class_type: str, **inputs) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    @staticmethod
    def out(node_id: str, slot: int = 0) -> list:
        """A link to output ``slot`` of node ``node_id``, usable as an input value."""
        return [node_id, slot]

    def api(self) -> dict:
        return {k: {"class_type": v["class_type"], "inputs": dict(v["inputs"])} for k, v in self.nodes.items()}


@dataclass(frozen=True)
class Refusal:
    """Why the server refused a prompt: at validation (``POST /prompt``, ComfyUI's own checks) or by a node
    raising while it ran."""

    stage: str  # "validation" or "execution"
    node_type: str
    exception_type: str  # the node's exception class; "" at validation
    message: str


def run_refused(comfy_server, prompt, timeout: float = 120.0) -> Refusal:
    """Queue a prompt that must be refused, one way or the other; return how.

    A node that fails validation is refused even when the prompt is queued for the outputs that do not depend
    on it (ComfyUI answers with a prompt id and ``node_errors``; those outputs are still run here, to the end).
    """
    api = prompt.api() if hasattr(prompt, "api") else prompt
    prompt_id, node_errors = comfy_server.queue(api)
    if node_errors:
        if prompt_id is not None:
            comfy_server.wait(prompt_id, timeout=timeout)
        ((_, node),) = node_errors.items()
        message = "; ".join(f"{error['message']}: {error['details']}" for error in node["errors"])
        return Refusal("validation", node["class_type"], "", message)
    outcome = comfy_server.wait(prompt_id, timeout=timeout)
    assert outcome.status == "error", f"the prompt was not refused: {outcome.status}"
    assert comfy_server.alive()
    return Refusal("execution", outcome.error.node_type, outcome.error.exception_type, outcome.error.message)


def refused_by_the_node(refusal: Refusal, host_checks_combos: bool, node_type: str, input_name: str,
                        value: str) -> bool:
    """Check a refused combo value; True when the node itself refused it (the caller checks its words).

    Hosts that check combo values against the options at ``POST /prompt`` (``host_checks_combos``) refuse it
    there, naming the input and the value; the others run the node, whose own check must refuse it.
    """
    assert refusal.node_type == node_type, refusal
    if host_checks_combos:
        assert refusal.stage == "validation", refusal
        assert "Value not in list" in refusal.message and input_name in refusal.message, refusal
        assert value in refusal.message, refusal
        return False
    assert refusal.stage == "execution", refusal
    return True
