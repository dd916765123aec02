"""Convert a UI-format workflow (what ComfyUI's editor saves) to an API-format prompt.

The UI format stores each node's widget values as a positional list and its
connections in a separate link table; the API format (what ``POST /prompt``
takes) names every input. Widget names and their order come from the
server's ``/object_info`` (``input_order``), so the conversion follows the
nodes as the running server defines them.

Handled: links (``[node_id, slot]``), widgets turned into linked inputs,
the extra ``control_after_generate`` value after seed-like inputs, trailing
UI-only values (upload buttons), muted nodes, ``Reroute`` chains, notes.
Not handled (raises): bypassed nodes, subgraphs, primitive nodes, unknown types.
"""

from __future__ import annotations

from dataclasses import dataclass

UI_ONLY_TYPES = {"Note", "MarkdownNote"}
REROUTE = "Reroute"
MODE_MUTED = 2
MODE_BYPASSED = 4
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


class WorkflowError(ValueError):
    """The workflow cannot be converted (names the node at fault)."""


@dataclass(frozen=True)
class Link:
    origin_id: int
    origin_slot: int
    target_id: int
    target_slot: int


def _links_by_id(workflow: dict) -> dict[int, Link]:
    links = {}
    for entry in workflow.get("links", []):
        if isinstance(entry, dict):
            link_id = entry["id"]
            links[link_id] = Link(entry["origin_id"], entry["origin_slot"], entry["target_id"], entry["target_slot"])
        else:
            link_id, origin_id, origin_slot, target_id, target_slot = entry[:5]
            links[link_id] = Link(origin_id, origin_slot, target_id, target_slot)
    return links


def _is_widget(spec: list) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _input_specs(info: dict) -> list[tuple[str, list]]:
    """``(name, spec)`` of required then optional inputs, in ``input_order``."""
    order = info.get("input_order", {})
    specs = []
    for section in ("required", "optional"):
        declared = info.get("input", {}).get(section, {})
        for name in order.get(section, list(declared)):
            specs.append((name, declared[name]))
    return specs


class _Converter:
    def __init__(self, workflow: dict, object_info: dict):
        if workflow.get("definitions", {}).get("subgraphs"):
            raise WorkflowError("workflows with subgraphs are not supported; unpack the subgraph first")
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = _links_by_id(workflow)
        self.object_info = object_info

    def source_of(self, link_id: int) -> list | None:
        """``[node_id, slot]`` feeding a link, following reroutes; None if it comes from a muted node."""
        link = self.links[link_id]
        origin = self.nodes[link.origin_id]
        if origin["type"] == REROUTE:
            upstream = origin["inputs"][0].get("link")
            return None if upstream is None else self.source_of(upstream)
        if origin.get("mode", 0) == MODE_MUTED:
            return None
        return [str(origin["id"]), link.origin_slot]

    def convert_node(self, node: dict) -> dict:
        label = f"node {node['id']} ({node['type']})"
        info = self.object_info.get(node["type"])
        if info is None:
            raise WorkflowError(f"{label}: the server has no node of this type")
        linked = {}
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                source = self.source_of(socket["link"])
                if source is not None:
                    linked[socket["name"]] = source
        return {"class_type": node["type"], "inputs": {**self.widget_values(node, info), **linked}}

    @staticmethod
    def widget_values(node: dict, info: dict) -> dict:
        values = node.get("widgets_values") or []
        specs = [(name, spec) for name, spec in _input_specs(info) if _is_widget(spec)]
        if isinstance(values, dict):
            return {name: values[name] for name, _ in specs if name in values}
        inputs, position = {}, 0
        for name, spec in specs:
            if position >= len(values):
                break
            inputs[name] = values[position]
            position += 1
            options = spec[1] if len(spec) > 1 else {}
            if options.get("control_after_generate"):
                position += 1  # the "fixed"/"randomize" widget the editor adds after it
        return inputs

    def convert(self) -> dict:
        prompt = {}
        for node in self.nodes.values():
            mode = node.get("mode", 0)
            if node["type"] in UI_ONLY_TYPES or node["type"] == REROUTE or mode == MODE_MUTED:
                continue
            if mode == MODE_BYPASSED:
                raise WorkflowError(f"node {node['id']} ({node['type']}) is bypassed; bypass is not supported")
            prompt[str(node["id"])] = self.convert_node(node)
        return prompt


def workflow_to_api(workflow: dict, object_info: dict) -> dict:
    """The API-format prompt for a UI-format workflow, using the server's ``/object_info``."""
    return _Converter(workflow, object_info).convert()
