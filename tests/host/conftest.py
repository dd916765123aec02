"""One real ComfyUI server for the whole host-test session.

The server runs from the host installed by ``tools/comfy_host.py install``
(done here if needed), on a free 127.0.0.1 port, with a temporary base folder
whose ``custom_nodes/`` links this pack and whose ``models/`` tests may fill.
Its output goes to a log file that is attached to every failing test report.
"""

from __future__ import annotations

import pytest

from tests.host.harness import load_comfy_host

comfy_host = load_comfy_host()
LOG_TAIL_CHARS = 20000


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    comfy_dir = comfy_host.install()
    base_dir = comfy_host.prepare_base_dir(tmp_path_factory.mktemp("comfy_base"))
    server = comfy_host.ComfyServer(comfy_dir, base_dir, log_path=base_dir / "comfyui.log")
    server.start(timeout=240)
    try:
        yield server
    finally:
        server.stop()


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
