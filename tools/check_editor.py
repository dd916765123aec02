"""Manual check that the real ComfyUI editor loads the shipped workflow (not part of CI: needs a browser).

Start a server first (`bash tools/serve.sh --port 8188`), then, with Debian's `chromium` and the
`playwright` Python package installed (`apt-get install chromium`, `pip install playwright`; no
browser download is needed):

    python tools/check_editor.py [--url http://127.0.0.1:8188] [--screenshot editor.png]

It opens the editor headless, loads `workflows/singer.json` through the frontend's own loader and
prints every node with its widget values as the editor sees them; exit 1 if a node or link is lost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "singer.json"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
READ_GRAPH = """() => ({
    nodes: window.app.graph._nodes.map(n => [n.id, n.type, (n.widgets || []).map(w => [w.name, w.value])]),
    links: Object.keys(window.app.graph.links || {}).length,
})"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--screenshot", default=None)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    workflow = json.loads(WORKFLOW.read_text())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(args.url, wait_until="networkidle", timeout=120_000)
        page.wait_for_function("() => window.app && window.app.graph", timeout=120_000)
        page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
        graph = page.evaluate(READ_GRAPH)
        if args.screenshot:
            page.screenshot(path=args.screenshot)
        browser.close()
    for node_id, node_type, widgets in graph["nodes"]:
        print(node_id, node_type, widgets)
    lost = len(workflow["nodes"]) - len(graph["nodes"]), len(workflow["links"]) - graph["links"]
    print(f"{len(graph['nodes'])} nodes, {graph['links']} links loaded by the editor")
    return 1 if any(lost) else 0


if __name__ == "__main__":
    sys.exit(main())
