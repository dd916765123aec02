"""A local stand-in for the Hugging Face Hub (stdlib ``http.server`` on 127.0.0.1) for the real
``huggingface_hub`` client, pointed at it with ``HF_ENDPOINT``.

It answers what the client asks for, as the Hub does:

* ``GET /api/models/{repo}/revision/{rev}``: the commit (``sha``) and the file names;
* ``GET /api/models/{repo}/tree/{rev}[/{path}]``: the listing with sizes, git blob ids and, for LFS files,
  ``lfs.oid`` (sha256);
* ``HEAD|GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` (the blob id, or the sha256 for LFS
  files) and, for LFS files, a 302 to a CDN path with ``X-Linked-Etag`` / ``X-Linked-Size``;
* ``GET /cdn/{sha256}``: the bytes, honouring ``Range: bytes=N-`` with ``206`` and ``Content-Range``.

No Xet headers are sent, so the client uses plain HTTP. Faults a test can switch on: a token to require
(401 without it), files listed but gone (404), files served corrupted, a transfer that stalls half-way, and
sizes listed larger than the files.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

TEXT_SUFFIXES = (".json", ".md", ".txt", ".gitattributes", ".yaml")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubFaults:
    token: str | None = None  # when set, every request without "Authorization: Bearer <token>" gets 401
    gone: set[str] = field(default_factory=set)  # listed, but resolve answers 404
    corrupt: set[str] = field(default_factory=set)  # served with the same size, one byte changed
    stall_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the transfer stalls
    listed_size: dict[str, int] = field(default_factory=dict)  # path -> size the listing claims
    throttle: dict[str, int] = field(default_factory=dict)  # path -> bytes per second (a slow transfer)
    release: threading.Event = field(default_factory=threading.Event)  # ends every stall


class FakeHub:
    """``FakeHub({repo: {path: bytes}})`` as a context manager; ``.endpoint`` for ``HF_ENDPOINT``."""

    def __init__(self, repos: dict[str, dict[str, bytes]], faults: HubFaults | None = None):
        self.repos = repos
        self.faults = faults or HubFaults()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.served: dict[str, int] = {}  # path in repo -> body bytes sent
        self.lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def commit(self, repo: str) -> str:
        names = "".join(f"{p}:{git_blob_id(d)}" for p, d in sorted(self.repos[repo].items()))
        return hashlib.sha1(f"{repo}|{names}".encode()).hexdigest()

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.faults.release.set()
        self.server.shutdown()
        self.server.server_close()

    def downloads(self) -> list[str]:
        """Paths of the file transfers (GET of content) requested so far."""
        return [p for method, p, _ in self.requests if method == "GET" and ("/resolve/" in p or "/cdn/" in p)]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that goes away mid-transfer (killed, cancelled) is part of the tests, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def is_lfs(path: str) -> bool:
    return not path.endswith(TEXT_SUFFIXES)


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._route(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._route(body=True)

        # ---- routing ------------------------------------------------------------------------------------
        def _route(self, body: bool) -> None:
            path = unquote(urlparse(self.path).path)
            with hub.lock:
                hub.requests.append((self.command, path, self.headers.get("Range")))
            if hub.faults.token and self.headers.get("Authorization") != f"Bearer {hub.faults.token}":
                return self._json(401, {"error": "Invalid credentials in Authorization header"}, body,
                                  {"X-Error-Code": "RepoNotFound"})
            for pattern, method in (
                (r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", self._revision),
                (r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", self._tree),
                (r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self._resolve),
                (r"/cdn/([0-9a-f]{64})", self._cdn),
            ):
                match = re.fullmatch(pattern, path)
                if match:
                    return method(body, *match.groups())
            return self._json(404, {"error": "not found"}, body)

        def _repo(self, repo: str, body: bool) -> dict[str, bytes] | None:
            if repo not in hub.repos:
                self._json(404, {"error": "Repository not found"}, body, {"X-Error-Code": "RepoNotFound"})
                return None
            return hub.repos[repo]

        def _revision(self, body: bool, repo: str, revision: str | None) -> None:
            files = self._repo(repo, body)
            if files is None:
                return
            if revision not in (None, "main", hub.commit(repo)):
                return self._json(404, {"error": f"Invalid rev id: {revision}"}, body,
                                  {"X-Error-Code": "RevisionNotFound"})
            info = {"id": repo, "modelId": repo, "sha": hub.commit(repo), "private": False, "tags": [],
                    "siblings": [{"rfilename": p} for p in sorted(files)]}
            self._json(200, info, body)

        def _tree(self, body: bool, repo: str, revision: str, under: str | None) -> None:
            files = self._repo(repo, body)
            if files is None:
                return
            prefix = f"{under.strip('/')}/" if under else ""
            entries, folders = [], set()
            for path, data in sorted(files.items()):
                if not path.startswith(prefix):
                    continue
                parts = path.split("/")
                folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
                size = hub.faults.listed_size.get(path, len(data))
                entry = {"type": "file", "oid": git_blob_id(data), "size": size, "path": path}
                if is_lfs(path):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": size, "pointerSize": 134}
                entries.append(entry)
            entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)
                        if f.startswith(prefix)]
            self._json(200, entries, body)

        def _resolve(self, body: bool, repo: str, revision: str, path: str) -> None:
            files = self._repo(repo, body)
            if files is None:
                return
            if path not in files or path in hub.faults.gone:
                return self._json(404, {"error": "Entry not found"}, body, {"X-Error-Code": "EntryNotFound"})
            data = files[path]
            headers = {"X-Repo-Commit": hub.commit(repo)}
            if is_lfs(path):
                sha256 = hashlib.sha256(data).hexdigest()
                headers |= {"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data)),
                            "ETag": f'"{git_blob_id(data)}"', "Location": f"/cdn/{sha256}", "Content-Length": "0"}
                self.send_response(302)
                for name, value in headers.items():
                    self.send_header(name, value)
                return self.end_headers()
            self._bytes(path, data, body, headers | {"ETag": f'"{git_blob_id(data)}"'})

        def _cdn(self, body: bool, sha256: str) -> None:
            for files in hub.repos.values():
                for path, data in files.items():
                    if hashlib.sha256(data).hexdigest() == sha256:
                        return self._bytes(path, data, body, {"ETag": f'"{sha256}"'})
            self._json(404, {"error": "no such object"}, body)

        # ---- responses ----------------------------------------------------------------------------------
        def _json(self, status: int, payload, body: bool, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                                **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _bytes(self, path: str, data: bytes, body: bool, headers: dict) -> None:
            if path in hub.faults.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and int(match.group(1)) < len(data):
                start = int(match.group(1))
            self.send_response(206 if start else 200)
            headers = {"Content-Length": str(len(data) - start), "Accept-Ranges": "bytes", **headers}
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not body:
                return
            stall = hub.faults.stall_after.get(path)
            if stall is not None and start < stall and not hub.faults.release.is_set():
                self._send(path, data[start:stall])
                hub.faults.release.wait(120)
                return  # the connection closes short: the client sees a truncated body
            self._send(path, data[start:])

        def _send(self, path: str, data: bytes) -> None:
            rate = hub.faults.throttle.get(path)
            piece = max(rate // 10, 1) if rate else len(data) or 1
            for start in range(0, len(data), piece):
                chunk = data[start:start + piece]
                self.wfile.write(chunk)
                self.wfile.flush()
                with hub.lock:
                    hub.served[path] = hub.served.get(path, 0) + len(chunk)
                if rate and hub.faults.throttle.get(path):
                    time.sleep(0.1)

    return Handler


def tiny_hub_repos(work: Path, comfy_vae: bool = False) -> dict[str, dict[str, bytes]]:
    """The two official repositories in their own layout, holding the test suite's tiny models (plus files of
    theirs the pack does not need). The SINGER net is our tiny ``.safetensors`` (its tiny architecture in the
    metadata) under a folder, so the listing decides where it is; the VAE file carries its tiny config."""
    from tests.tiny_models.face_onnx import write_antelopev2
    from tests.tiny_models.net import write_tiny_singer_checkpoint
    from tests.tiny_models.separator import write_tiny_mdx_onnx
    from tests.tiny_models.vae import write_single_file
    from tests.tiny_models.wav2vec import write_tiny_wav2vec_folder

    write_tiny_singer_checkpoint(work / "singer" / "net.safetensors")
    write_tiny_singer_checkpoint(work / "hallo" / "net.pth", kind="hallo", fmt="pth")
    if comfy_vae:
        from tests.tiny_models.comfy_vae import write_sd_vae

        write_sd_vae(work / "vae" / "diffusion_pytorch_model.safetensors")
    else:
        write_single_file(work / "vae" / "diffusion_pytorch_model.safetensors")
    write_tiny_wav2vec_folder(work / "wav2vec")
    write_antelopev2(work / "face")
    write_tiny_mdx_onnx(work / "separator" / "Kim_Vocal_2.onnx", dim_t=32)
    read = lambda *parts: (work.joinpath(*parts)).read_bytes()  # noqa: E731
    singer = {
        ".gitattributes": b"*.pth filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": b"# SINGER\n",
        "pretrained_models/net.safetensors": read("singer", "net.safetensors"),
    }
    hallo = {
        ".gitattributes": b"*.onnx filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": b"# hallo\n",
        "hallo/net.pth": read("hallo", "net.pth"),
        "sd-vae-ft-mse/config.json": b'{"_class_name": "AutoencoderKL"}',
        "sd-vae-ft-mse/diffusion_pytorch_model.safetensors": read("vae", "diffusion_pytorch_model.safetensors"),
        "wav2vec/wav2vec2-base-960h/config.json": read("wav2vec", "config.json"),
        "wav2vec/wav2vec2-base-960h/model.safetensors": read("wav2vec", "model.safetensors"),
        "wav2vec/wav2vec2-base-960h/vocab.json": b'{"<pad>": 0}',
        "audio_separator/Kim_Vocal_2.onnx": read("separator", "Kim_Vocal_2.onnx"),
        "face_analysis/models/1k3d68.onnx": b"not needed by the pack",
    }
    for name in ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "2d106det.onnx"):
        hallo[f"face_analysis/models/{name}"] = read("face", name)
    return {"yl2333/SINGER": singer, "fudan-generative-ai/hallo": hallo}
