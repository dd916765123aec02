"""Fetch the model files from the official Hugging Face repositories, on request, resumable and verified.

    python -m singer_core download --models DIR [--only singer,vae,wav2vec2,face,separator,hallo] [--revision R]

Each file goes to the name and folder the loaders expect (``singer_core.layout``); the ComfyUI node
*SINGER Download Models* calls :func:`download` with ComfyUI's own model folders. Sources, licences and the
target of every file are the fixed table :data:`GROUPS`: nothing here takes a repository id or a path from
the caller.

Why not ``hf_hub_download(local_dir=...)``: since huggingface_hub 1.x it writes each download to a
process-unique temporary file that it deletes on failure (huggingface_hub PR #4228), so a cancelled or killed
download starts again from zero, and it keeps the repository's paths (``face_analysis/models/x.onnx``) where
the loaders want ComfyUI's (``insightface/models/antelopev2/x.onnx``). We use the same client for everything
else: ``HfApi`` (commit, listing with sizes and LFS sha256), ``hf_hub_url``, its HTTP layer ``http_get``
(``Range`` resume, retries, redirects), ``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE``. A partial file
lives under the folder's hidden ``.cache/singer-download/`` with the suffix ``.incomplete``, which no loader
lists (ComfyUI lists by file type; the command line skips folders without ``config.json``), and a file is
moved to its final name only after its size and hash match the Hub's metadata.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from singer_core.errors import (
    AccessDeniedError,
    ChecksumMismatchError,
    DiskSpaceError,
    DownloadError,
    DownloadInterruptedError,
    OfflineError,
    RemoteFileMissingError,
)
from singer_core.layout import (
    ANTELOPE_FILES,
    AUDIO_SEPARATOR,
    CHECKPOINT_SUFFIXES,
    FACE_MODELS_SUBDIR,
    INSIGHTFACE,
    SEPARATOR_FILE,
    SINGER,
    VAE,
    WAV2VEC2,
    ModelFolder,
)

SINGER_REPO = "yl2333/SINGER"
HALLO_REPO = "fudan-generative-ai/hallo"
MANUAL_ROUTE = "README.md, section 'Model files and where they go' (the manual table)"
STATE_DIR = ".cache/singer-download"  # inside each model folder: partial files and verification records
PARTIAL_SUFFIX = ".incomplete"
HASH_CHUNK = 8 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository at a commit, with the Hub's metadata to verify it against."""

    repo: str
    path: str
    commit: str
    size: int
    sha256: str | None  # LFS files: the content's sha256
    blob_id: str  # the git blob id (sha1 of "blob <size>\\0" + content); the content hash of non-LFS files

    @property
    def digest(self) -> tuple[str, str]:
        """(algorithm, expected hex digest) of the file's content."""
        return ("sha256", self.sha256) if self.sha256 else ("git-sha1", self.blob_id)


Listing = dict  # repository path -> RemoteFile
Picker = Callable[[Listing], list[tuple[str, ModelFolder, str]]]  # -> (repo path, folder, target in folder)


@dataclass(frozen=True)
class ModelGroup:
    """A group of ``--only``: where it comes from, under which licence, and how its files are picked."""

    name: str
    what: str
    repo: str
    origin: str
    licence: str
    pick: Picker
    default: bool = True


def _one(listing: Listing, path: str, folder: ModelFolder, target: str) -> tuple[str, ModelFolder, str]:
    if path not in listing:
        raise RemoteFileMissingError(_missing_message(next(iter(listing.values()), None), path, folder, target))
    return path, folder, target


def _missing_message(sample: RemoteFile | None, path: str, folder: ModelFolder, target: str) -> str:
    where = f"{sample.repo}@{sample.commit[:12]}" if sample else "the repository"
    repo = sample.repo if sample else ""
    return (f"{path} is not in {where} (HTTP 404). Download it by hand from https://huggingface.co/{repo} and put "
            f"it at models/{folder.name}/{target} ({MANUAL_ROUTE}).")


def pick_singer_net(listing: Listing) -> list[tuple[str, ModelFolder, str]]:
    """The SINGER net, found through the listing (the inference config calls it ``net.pth``; its folder in the
    repository is not fixed): a file named ``net.pth``, else ``net.<checkpoint suffix>``; the shallowest wins,
    two at the same depth are ambiguous."""
    names = [p for p in listing if p.rsplit("/", 1)[-1] == "net.pth"] or [
        p for p in listing if Path(p).stem == "net" and Path(p).suffix in CHECKPOINT_SUFFIXES
    ]
    if not names:
        raise RemoteFileMissingError(_missing_message(next(iter(listing.values()), None), "net.pth", SINGER,
                                                      "singer_net.pth"))
    depth = min(p.count("/") for p in names)
    shallowest = sorted(p for p in names if p.count("/") == depth)
    if len(shallowest) > 1:
        raise RemoteFileMissingError(f"Several SINGER nets in {SINGER_REPO}: {', '.join(shallowest)}. Download the "
                                     f"one you want by hand into models/singer/ ({MANUAL_ROUTE}).")
    path = shallowest[0]
    return [(path, SINGER, "singer_net" + Path(path).suffix)]


def pick_wav2vec2(listing: Listing) -> list[tuple[str, ModelFolder, str]]:
    """config.json and the weights (model.safetensors, else pytorch_model.bin): what ``load_wav2vec`` reads."""
    base, target = "wav2vec/wav2vec2-base-960h/", "wav2vec2-base-960h/"
    weights = next((n for n in ("model.safetensors", "pytorch_model.bin") if base + n in listing), "model.safetensors")
    return [_one(listing, base + name, WAV2VEC2, target + name) for name in ("config.json", weights)]


GROUPS = (
    ModelGroup(
        "singer", "SINGER net (net.pth)", SINGER_REPO,
        "huggingface.co/yl2333/SINGER, by the SINGER authors (github.com/yl4467/singer)",
        "no licence file in the authors' code (github.com/yl4467/singer); check the model card: research use, ask "
        "the authors for anything else",
        pick_singer_net,
    ),
    ModelGroup(
        "vae", "VAE sd-vae-ft-mse", HALLO_REPO,
        "huggingface.co/fudan-generative-ai/hallo, sd-vae-ft-mse/ (Stability AI's stabilityai/sd-vae-ft-mse)",
        "MIT (Stability AI)",
        lambda listing: [_one(listing, "sd-vae-ft-mse/diffusion_pytorch_model.safetensors", VAE,
                              "sd-vae-ft-mse.safetensors")],
    ),
    ModelGroup(
        "wav2vec2", "audio encoder wav2vec2-base-960h", HALLO_REPO,
        "huggingface.co/fudan-generative-ai/hallo, wav2vec/wav2vec2-base-960h/ (Meta's facebook/wav2vec2-base-960h)",
        "Apache-2.0 (Meta)",
        pick_wav2vec2,
    ),
    ModelGroup(
        "face", "face analysis, insightface antelopev2 (scrfd_10g_bnkps, glintr100, 2d106det)", HALLO_REPO,
        "huggingface.co/fudan-generative-ai/hallo, face_analysis/models/ (the insightface model zoo's antelopev2)",
        "insightface models: NON-COMMERCIAL RESEARCH USE ONLY (insightface model zoo terms)",
        lambda listing: [_one(listing, f"face_analysis/models/{name}", INSIGHTFACE, f"{FACE_MODELS_SUBDIR}/{name}")
                         for name in ANTELOPE_FILES],
    ),
    ModelGroup(
        "separator", "vocal separator Kim_Vocal_2 (optional)", HALLO_REPO,
        "huggingface.co/fudan-generative-ai/hallo, audio_separator/ (an MDX-Net model of Ultimate Vocal Remover)",
        "weights distributed with Ultimate Vocal Remover (MIT-licensed software); no licence stated for the weights",
        lambda listing: [_one(listing, f"audio_separator/{SEPARATOR_FILE}", AUDIO_SEPARATOR, SEPARATOR_FILE)],
    ),
    ModelGroup(
        "hallo", "Hallo net (hallo/net.pth, optional: Hallo instead of SINGER)", HALLO_REPO,
        "huggingface.co/fudan-generative-ai/hallo, hallo/net.pth (Fudan Generative Vision)",
        "MIT (Fudan Generative Vision, hallo)",
        lambda listing: [_one(listing, "hallo/net.pth", SINGER, "hallo_net.pth")],
        default=False,
    ),
)
GROUP_NAMES = tuple(group.name for group in GROUPS)
DEFAULT_GROUPS = tuple(group.name for group in GROUPS if group.default)


def parse_only(value: str | None) -> tuple[str, ...]:
    """``--only a,b`` -> the groups in table order; unknown names are an error naming the valid ones."""
    if not value:
        return DEFAULT_GROUPS
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUP_NAMES]
    if unknown or not names:
        raise DownloadError(f"--only: unknown model group(s) {', '.join(unknown) or repr(value)}; "
                            f"choose from {', '.join(GROUP_NAMES)}.")
    return tuple(name for name in GROUP_NAMES if name in names)


def licence_notice(groups: Iterable[str]) -> str:
    """What is about to be fetched, from where, under which licence: shown before the first byte."""
    lines = ["Model files, their origin and licence (read before use):"]
    for group in GROUPS:
        if group.name in groups:
            lines.append(f"  [{group.name}] {group.what}\n      from: {group.origin}\n      licence: {group.licence}")
    return "\n".join(lines)


# ---- results ---------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one target file (or to a whole group when it failed before its files were known)."""

    group: str
    target: str
    status: str  # "fetched" | "present" | "failed"
    detail: str = ""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def summary(self) -> str:
        counts = {s: sum(o.status == s for o in self.outcomes) for s in ("fetched", "present", "failed")}
        lines = [f"Summary: {counts['fetched']} fetched, {counts['present']} already present, "
                 f"{counts['failed']} failed"]
        for outcome in self.outcomes:
            detail = f": {outcome.detail}" if outcome.detail else ""
            lines.append(f"  {outcome.status:8} [{outcome.group}] {outcome.target}{detail}")
        return "\n".join(lines)


# ---- the Hub ---------------------------------------------------------------------------------------------------


def _hub_errors() -> tuple:
    """The exception types of the HTTP library the installed huggingface_hub uses (requests in 0.x, httpx in
    1.x, httpx2 in 2.x) that mean "no connection"."""
    found = []
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        try:
            imported = __import__(module)
        except ImportError:
            continue
        found.extend(getattr(imported, name) for name in names if hasattr(imported, name))
    return tuple(found)


def _endpoint() -> str:
    """``HF_ENDPOINT`` as it is when the download runs (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def _offline_check() -> None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        raise OfflineError("Offline mode is on (HF_HUB_OFFLINE is set), so no model file can be fetched. Unset "
                           f"HF_HUB_OFFLINE to download, or place the files by hand ({MANUAL_ROUTE}).")


def explain(error: BaseException, repo: str, what: str) -> DownloadError:
    """A huggingface_hub / network error as the message a user can act on (the same words for CLI and node)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(error, DownloadError):
        return error
    if isinstance(error, OfflineModeIsEnabled):
        return OfflineError(f"Offline mode is on (HF_HUB_OFFLINE is set): cannot fetch {what}. Unset HF_HUB_OFFLINE "
                            f"to download, or place the files by hand ({MANUAL_ROUTE}).")
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, HfHubHTTPError) and status in (401, 403):
        return AccessDeniedError(
            f"The Hub refused access to {repo} (HTTP {status}) while fetching {what}: the repository is gated or "
            f"private, or the token is wrong. Accept its terms on https://huggingface.co/{repo} and set HF_TOKEN to "
            "a token that can read it (or run `hf auth login`), then run the download again."
        )
    if isinstance(error, HfHubHTTPError) and status == 404:
        return RemoteFileMissingError(
            f"{what} was not found on the Hub ({repo}, HTTP 404). Download it by hand from https://huggingface.co/"
            f"{repo} ({MANUAL_ROUTE})."
        )
    if isinstance(error, _hub_errors()) or isinstance(error, (ConnectionError, TimeoutError)):
        return OfflineError(f"Cannot reach the Hugging Face Hub at {_endpoint()} while fetching {what} ({error}). "
                            "Check the network connection (and HF_ENDPOINT / proxy settings), or place the files by "
                            f"hand ({MANUAL_ROUTE}).")
    if isinstance(error, HfHubHTTPError):
        return DownloadError(f"The Hub answered HTTP {status} for {what} ({repo}): {error}. Try again later, or "
                             f"place the files by hand ({MANUAL_ROUTE}).")
    raise error


def list_repository(repo: str, revision: str | None) -> Listing:
    """Every file of ``repo`` at the commit ``revision`` resolves to, with sizes and hashes (two API calls)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=_endpoint())
    what = f"the file list of {repo}" + (f" at revision {revision}" if revision else "")
    try:
        commit = api.model_info(repo, revision=revision).sha
        entries = list(api.list_repo_tree(repo, revision=commit, recursive=True))
    except Exception as error:  # noqa: BLE001 - explain() re-raises what it does not recognise
        raise explain(error, repo, what) from error
    listing = {}
    for entry in entries:
        if isinstance(entry, RepoFile):
            lfs = entry.lfs
            sha256 = (lfs.sha256 if hasattr(lfs, "sha256") else lfs["sha256"]) if lfs else None
            listing[entry.path] = RemoteFile(repo, entry.path, commit, entry.size, sha256, entry.blob_id)
    return listing


# ---- files on disk ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One file to have: its remote source and where it goes."""

    group: str
    remote: RemoteFile
    root: Path  # the model folder (a ComfyUI models folder)
    target: str  # relative to root

    @property
    def path(self) -> Path:
        return self.root / self.target

    @property
    def partial(self) -> Path:
        algorithm, digest = self.remote.digest
        return self.root / STATE_DIR / f"{self.target}.{digest[:16]}{PARTIAL_SUFFIX}"

    @property
    def record(self) -> Path:
        return self.root / STATE_DIR / f"{self.target}.json"


def confined(root: Path, target: str) -> Path:
    """``root/target``, refused if it would leave ``root`` (targets come from the fixed table; belt and braces)."""
    path = (root / target).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DownloadError(f"Refusing to write {target} outside the model folder {root}.")
    return path


def file_digest(path: Path, algorithm: str) -> str:
    """sha256 of the content, or the git blob id (what the Hub lists for files not stored in LFS)."""
    digest = hashlib.sha256() if algorithm == "sha256" else hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def is_present(item: Planned) -> bool:
    """The target exists and matches the Hub's size and hash. A verification record (size, mtime, digest)
    spares re-hashing a file this command already checked; any other file is hashed once."""
    path, (algorithm, expected) = item.path, item.remote.digest
    if not path.is_file() or path.stat().st_size != item.remote.size:
        return False
    try:
        record = json.loads(item.record.read_text())
        if record["digest"] == expected and record["stat"] == _stat_key(path):
            return True
    except (OSError, ValueError, KeyError):
        pass
    if file_digest(path, algorithm) != expected:
        return False
    _write_record(item)
    return True


def _write_record(item: Planned) -> None:
    item.record.parent.mkdir(parents=True, exist_ok=True)
    record = {"repo": item.remote.repo, "path": item.remote.path, "commit": item.remote.commit,
              "digest": item.remote.digest[1], "stat": _stat_key(item.path)}
    item.record.write_text(json.dumps(record))


def _partial_size(item: Planned) -> int:
    try:
        size = item.partial.stat().st_size
    except OSError:
        return 0
    return size if size <= item.remote.size else 0


def check_free_space(todo: Sequence[Planned], extra: dict[Path, int] | None = None) -> None:
    """Refuse before any byte is fetched when a disk lacks room for what is still to come (per file system)."""
    needs: dict[int, tuple[Path, int]] = {}
    for item in todo:
        item.root.mkdir(parents=True, exist_ok=True)
        device = item.root.stat().st_dev
        root, need = needs.get(device, (item.root, 0))
        needs[device] = (root, need + item.remote.size - _partial_size(item) + (extra or {}).get(item.path, 0))
    for root, need in needs.values():
        free = shutil.disk_usage(root).free
        if need > free:
            raise DiskSpaceError(f"Not enough disk space in {root}: the model files still to fetch need "
                                 f"{_size(need)}, only {_size(free)} is free. Free {_size(need - free)} (or more) "
                                 "and run the download again.")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


class _CountingFile:
    """The open partial file, reporting every chunk ``http_get`` writes (progress, and the cancel check that
    may raise: the bytes already written stay for the next run)."""

    def __init__(self, handle, on_bytes: Callable[[int], None]):
        self.handle, self.on_bytes = handle, on_bytes

    def write(self, chunk: bytes) -> int:
        written = self.handle.write(chunk)
        self.on_bytes(len(chunk))
        return written

    def __getattr__(self, name):  # seek / truncate / tell, used when a server ignores Range
        return getattr(self.handle, name)


def fetch(item: Planned, on_bytes: Callable[[int], None] = lambda n: None) -> None:
    """Download ``item`` into its partial file (resuming it), verify size and hash, move it in place.
    A mismatch removes the partial file and raises :class:`ChecksumMismatchError`."""
    from huggingface_hub import file_download, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    remote = item.remote
    confined(item.root, item.target)
    item.partial.parent.mkdir(parents=True, exist_ok=True)
    resume = _partial_size(item)
    if resume == 0:
        item.partial.unlink(missing_ok=True)  # absent, or longer than the file: start again
    url = hf_hub_url(remote.repo, remote.path, revision=remote.commit, endpoint=_endpoint())
    on_bytes(resume)
    try:
        with _exclusive(item), open(item.partial, "ab") as handle:
            file_download.http_get(url, _CountingFile(handle, on_bytes), resume_size=resume, headers=build_hf_headers(),
                                   expected_size=remote.size, displayed_filename=item.target)
    except DownloadError:
        raise
    except Exception as error:
        if _is_http_error(error):
            raise explain(error, remote.repo, f"{remote.path} ({remote.repo})") from error
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise DiskSpaceError(f"The disk of {item.root} filled up while fetching {remote.path} "
                                 f"({_size(_partial_size(item))} of {_size(remote.size)} kept): free "
                                 f"{_size(remote.size - _partial_size(item))} or more and run the download again "
                                 "(it resumes).") from error
        if "Consistency check failed" not in str(error):  # that one: verify_and_place names the mismatch
            if not isinstance(error, (*_hub_errors(), OSError)):
                raise  # a host's cancel: the partial file stays for the next run
            raise _interrupted(item, error) from error
    verify_and_place(item)


@contextmanager
def _exclusive(item: Planned):
    """One writer per partial file (a second download of the same file, from the node or another command, is
    refused instead of appending to it). ``filelock`` is huggingface_hub's own lock."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(item.partial) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout as error:
        raise DownloadError(f"{item.remote.path} is already being downloaded into {item.root} by another run; wait "
                            "for it to finish.") from error
    try:
        yield
    finally:
        lock.release()  # the empty .lock file stays in the hidden folder, as huggingface_hub leaves its own


def _is_http_error(error: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    return isinstance(error, HfHubHTTPError)


def _interrupted(item: Planned, error: BaseException) -> DownloadError:
    """The Hub answered the listing, so a transfer that fails is interrupted, not unreachable: say it resumes."""
    return DownloadInterruptedError(
        f"The download of {item.remote.path} from {item.remote.repo} stopped after {_size(_partial_size(item))} of "
        f"{_size(item.remote.size)} ({error}). The partial file is kept (never loaded): run the download again to "
        "resume it."
    )


def verify_and_place(item: Planned) -> None:
    """Size and hash of the partial file against the Hub's metadata; only a match is moved to the target name."""
    algorithm, expected = item.remote.digest
    size = item.partial.stat().st_size
    actual = file_digest(item.partial, algorithm) if size == item.remote.size else None
    if actual != expected:
        item.partial.unlink(missing_ok=True)
        found = f"{algorithm} {actual}" if actual else f"{_size(size)}"
        raise ChecksumMismatchError(
            f"{item.remote.path} from {item.remote.repo} does not match the Hub's metadata (expected {algorithm} "
            f"{expected}, {_size(item.remote.size)}; got {found}). The file was removed and not used: run the "
            "download again."
        )
    item.path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(item.partial, item.path)
    _write_record(item)


# ---- the whole run ---------------------------------------------------------------------------------------------


FolderOf = Callable[[ModelFolder], Path]


def models_root_folders(models: str | Path) -> FolderOf:
    """The command line's layout: ``MODELS/<folder name>``."""
    return lambda folder: Path(models) / folder.name


@dataclass
class Progress:
    """Callbacks for a host: ``start(total_bytes)`` once the work is known, ``advance(n)`` per chunk (may raise to
    cancel: the partial file stays and resumes next time), ``log(text)`` for the notice and the summary."""

    start: Callable[[int], None] = lambda total: None
    advance: Callable[[int], None] = lambda n: None
    log: Callable[[str], None] = print


def plan(groups: Sequence[str], folder_of: FolderOf, revision: str | None, report: Report) -> list[Planned]:
    """List each repository once and pick every group's files; a group that cannot be planned is reported as
    failed (with the reason) and the others go on. Connection problems stop the run (they concern all)."""
    listings: dict[str, Listing | DownloadError] = {}
    planned = []
    for group in (g for g in GROUPS if g.name in groups):
        try:
            if group.repo not in listings:
                try:
                    listings[group.repo] = list_repository(group.repo, revision)
                except (AccessDeniedError, RemoteFileMissingError) as error:
                    listings[group.repo] = error  # one request per repository, one reason for each of its groups
            if isinstance(listings[group.repo], DownloadError):
                raise listings[group.repo]
            for path, folder, target in group.pick(listings[group.repo]):
                root = Path(folder_of(folder))
                confined(root, target)
                planned.append(Planned(group.name, listings[group.repo][path], root, target))
        except OfflineError:
            raise
        except DownloadError as error:
            report.outcomes.append(Outcome(group.name, group.what, "failed", str(error)))
    return planned


def download(groups: Sequence[str], folder_of: FolderOf, revision: str | None = None,
             progress: Progress | None = None, fp16: bool = False) -> Report:
    """Fetch what is missing of ``groups`` into ``folder_of(folder)``; returns what was fetched, already there,
    or failed and why. Raises (before fetching anything) when offline or when a disk is too small; a transfer
    that stops half-way raises :class:`DownloadInterruptedError` (the next run resumes it). ``fp16``: the SINGER
    net is kept as fp16 ``.safetensors`` (``singer_core.convert``) instead of the downloaded file."""
    progress = progress or Progress()
    progress.log(licence_notice(groups))
    _offline_check()
    report = Report()
    todo, to_convert = [], []
    for item in plan(groups, folder_of, revision, report):
        converts = fp16 and item.group == "singer"
        if converts and _is_converted_from(_converted(item), item):
            report.outcomes.append(Outcome(item.group, str(_converted(item)), "present"))
        elif converts and is_present(item):
            to_convert.append(item)  # fetched by an earlier run without --fp16-safetensors
        elif is_present(item):
            report.outcomes.append(Outcome(item.group, str(item.path), "present"))
        else:
            todo.append(item)
    check_free_space(todo, {item.path: item.remote.size // 2 for item in todo if fp16 and item.group == "singer"})
    progress.start(sum(item.remote.size for item in todo))
    for item in todo:
        try:
            fetch(item, progress.advance)
        except (OfflineError, DiskSpaceError, DownloadInterruptedError):
            raise
        except DownloadError as error:
            report.outcomes.append(Outcome(item.group, str(item.path), "failed", str(error)))
            continue
        if fp16 and item.group == "singer":
            to_convert.append(item)
        else:
            report.outcomes.append(Outcome(item.group, str(item.path), "fetched"))
    for item in to_convert:
        try:
            report.outcomes.append(Outcome(item.group, str(convert_to_fp16(item)), "fetched"))
        except DownloadError as error:
            report.outcomes.append(Outcome(item.group, str(item.path), "failed", str(error)))
    return report


def _converted(item: Planned) -> Path:
    return item.root / f"{Path(item.target).stem}_fp16.safetensors"


def _is_converted_from(converted: Path, item: Planned) -> bool:
    """The fp16 file exists and its record names the Hub file it was converted from."""
    try:
        record = json.loads((item.root / STATE_DIR / f"{converted.name}.json").read_text())
        return converted.is_file() and record["source_digest"] == item.remote.digest[1] and \
            record["stat"] == _stat_key(converted)
    except (OSError, ValueError, KeyError):
        return False


def convert_to_fp16(item: Planned) -> Path:
    """The verified download -> ``<stem>_fp16.safetensors`` with ``singer_core.convert``; the download is
    removed afterwards (it holds the same weights at full precision)."""
    import torch

    from singer_core.convert import convert
    from singer_core.errors import SingerError

    converted = _converted(item)
    try:
        convert(item.path, converted, dtype=torch.float16)
    except SingerError as error:
        raise DownloadError(f"{item.path} was fetched but could not be converted to fp16: {error}") from error
    record = {"source": item.remote.path, "source_digest": item.remote.digest[1], "stat": _stat_key(converted)}
    (item.root / STATE_DIR / f"{converted.name}.json").write_text(json.dumps(record))
    item.path.unlink()
    item.record.unlink(missing_ok=True)
    return converted


# ---- command line ----------------------------------------------------------------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "download", help="fetch the model files from the official Hugging Face repositories",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--models", required=True, help="models folder laid out like ComfyUI's models/")
    parser.add_argument("--only", help=f"comma-separated groups among {','.join(GROUP_NAMES)} "
                        f"(default: {','.join(DEFAULT_GROUPS)}; hallo is the optional Hallo net)")
    parser.add_argument("--revision", help="branch, tag or commit of every repository fetched from (default: main)")
    parser.add_argument("--fp16-safetensors", action="store_true",
                        help="store the SINGER net as fp16 .safetensors (converted after download, the .pth removed)")
    parser.set_defaults(handler=run_cli)
    return parser


def run_cli(args: argparse.Namespace) -> int:
    """Handler of ``download``: 0 when every file is in place, 1 when one failed (the summary says why)."""
    groups = parse_only(args.only)
    bar = _TotalBar()
    try:
        report = download(groups, models_root_folders(args.models), args.revision, bar.progress(),
                          fp16=args.fp16_safetensors)
    except KeyboardInterrupt:
        bar.close()
        print("\ninterrupted: the partial file is kept (never loaded); run the same command again to resume.",
              file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(report.summary())
    return 1 if report.failed else 0


class _TotalBar:
    """One tqdm bar over every byte still to fetch (huggingface_hub's own per-file bars are turned off)."""

    def __init__(self) -> None:
        self.bar = None

    def progress(self) -> Progress:
        from huggingface_hub.utils import disable_progress_bars
        from tqdm import tqdm

        disable_progress_bars()

        def start(total: int) -> None:
            if total:
                self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="downloading")

        def advance(n: int) -> None:
            if self.bar is not None:
                self.bar.update(n)

        return Progress(start=start, advance=advance, log=print)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
