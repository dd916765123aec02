"""Listen to ComfyUI's websocket (progress, executing) for prompts submitted with our client id."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid


class ServerEvents:
    """Collects the server's websocket messages for one client id in a background thread."""

    def __init__(self, comfy_server) -> None:
        self.server = comfy_server
        self.client_id = uuid.uuid4().hex
        self.messages: list[dict] = []
        self.binary: list[bytes] = []  # binary frames: previews (4-byte event type, then the payload)
        self._connected = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        import aiohttp

        url = self.server.url.replace("http://", "ws://") + f"/ws?clientId={self.client_id}"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as socket:
            self._connected.set()
            while not self._stop:
                try:
                    message = await socket.receive(timeout=0.2)
                except asyncio.TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.messages.append(json.loads(message.data))
                elif message.type == aiohttp.WSMsgType.BINARY:
                    self.binary.append(bytes(message.data))
                elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return

    def __enter__(self) -> ServerEvents:
        self._thread.start()
        if not self._connected.wait(10):
            raise RuntimeError("could not connect to the ComfyUI websocket")
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._thread.join(5)

    def submit(self, prompt: dict) -> str:
        """Queue a prompt whose progress messages come to this listener."""
        status, payload = self.server._request("POST", "/prompt", {"prompt": prompt, "client_id": self.client_id}, 30)
        assert status == 200 and "prompt_id" in payload, payload
        return payload["prompt_id"]

    def progress(self, node_id: str) -> list[tuple[int, int]]:
        """(value, max) of every progress message of ``node_id``."""
        return [(m["data"]["value"], m["data"]["max"]) for m in list(self.messages)
                if m.get("type") == "progress" and str(m["data"].get("node")) == node_id]

    def wait_for_progress(self, node_id: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.progress(node_id):
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {node_id} reported no progress within {timeout:.0f} s")
            time.sleep(0.05)

    def executing(self) -> list[str]:
        """Ids of the nodes the server said it started, in order."""
        return [str(m["data"]["node"]) for m in list(self.messages)
                if m.get("type") == "executing" and m["data"].get("node") is not None]

    def wait_for_executing(self, node_id: str, timeout: float = 120.0) -> None:
        """Block until the server started ``node_id``: the prompt's execution has begun (0.28.2 resets the
        interrupt flag when it begins, so an interrupt sent between queueing and that moment is lost)."""
        deadline = time.monotonic() + timeout
        while node_id not in self.executing():
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {node_id} did not start within {timeout:.0f} s")
            time.sleep(0.05)
