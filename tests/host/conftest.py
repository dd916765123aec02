"""One real ComfyUI server for the whole host-test session.

The server runs from the host installed by ``tools/comfy_host.py install``
(done here if needed), on a free 127.0.0.1 port, with a temporary base folder
whose ``custom_nodes/`` links this pack and whose ``models/`` tests may fill.
Its output goes to a log file that is attached to every failing test report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.harness import load_comfy_host

comfy_host = load_comfy_host()
LOG_TAIL_CHARS = 20000
MODEL_FOLDERS_AT_START = pytest.StashKey[frozenset]()
# What a user watching the sampler has on: previews decoded with the SD 1.5 latent2rgb factors.
SERVER_OPTIONS = ("--preview-method", "latent2rgb")
PROBE_NODE = """
# Test-only custom node (written by tests/host/conftest.py, never shipped): what ComfyUI's memory manager holds.
from aiohttp import web
from server import PromptServer
import comfy.model_management as mm

@PromptServer.instance.routes.get("/singer_test/loaded_models")
async def loaded_models(request):
    models = []
    for loaded in mm.current_loaded_models:
        patcher = loaded.model
        holder = getattr(patcher, "model", None)
        models.append({"class": type(holder).__name__, "kind": getattr(holder, "kind", None),
                       "device": str(loaded.device)})
    return web.json_response(models)

NODE_CLASS_MAPPINGS = {}
"""


def _add_probe_node(base_dir) -> None:
    probe = base_dir / "custom_nodes" / "singer_test_probe"
    probe.mkdir(parents=True, exist_ok=True)
    (probe / "__init__.py").write_text(PROBE_NODE)
    video_calls = base_dir / "custom_nodes" / "singer_test_video_contract"  # tests/host/test_video_contract.py
    video_calls.mkdir(exist_ok=True)
    (video_calls / "__init__.py").write_text((Path(__file__).parent / "video_contract_node.py").read_text())


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory, request):
    comfy_dir = comfy_host.install()
    base_dir = comfy_host.prepare_base_dir(tmp_path_factory.mktemp("comfy_base"))
    _add_probe_node(base_dir)
    server = comfy_host.ComfyServer(comfy_dir, base_dir, log_path=base_dir / "comfyui.log", extra_args=SERVER_OPTIONS)
    server.start(timeout=240)
    folders = frozenset(path.name for path in (base_dir / "models").iterdir())
    request.config.stash[MODEL_FOLDERS_AT_START] = folders
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def model_folders_at_start(comfy_server, request) -> frozenset:
    """Names in ``models/`` right after the server started, before any test wrote there."""
    return request.config.stash[MODEL_FOLDERS_AT_START]


@pytest.fixture(scope="session")
def models_dir(comfy_server):
    """ComfyUI's models folder of the session server; files written here are listed at once."""
    return comfy_server.base_dir / "models"


@pytest.fixture
def run_prompt(comfy_server):
    """Run an API-format prompt (dict or ``Prompt``) to completion; return its ``PromptOutcome``."""

    def run(prompt, timeout: float = 120.0):
        api = prompt.api() if hasattr(prompt, "api") else prompt
        return comfy_server.run(api, timeout=timeout)

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = item.funcargs.get("comfy_server") if hasattr(item, "funcargs") else None
    if report.failed and server is not None:
        report.sections.append(("ComfyUI server log (tail)", server.log_text()[-LOG_TAIL_CHARS:]))


@pytest.fixture(scope="session")
def singer_models(models_dir):
    """Tiny random SINGER models where the workflow's loaders look for them (the loaders' combo values)."""
    from tests.tiny_models.models_dir import write_tiny_models

    return write_tiny_models(models_dir)


@pytest.fixture(scope="session")
def input_dir(comfy_server):
    """ComfyUI's input folder of the session server, with the test photo and song in it."""
    import shutil
    from pathlib import Path

    folder = comfy_server.base_dir / "input"
    folder.mkdir(exist_ok=True)
    data = Path(__file__).resolve().parents[1] / "data"
    for name in ("0001.png", "0001.wav"):
        shutil.copy(data / name, folder / name)
    return folder
