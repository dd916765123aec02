"""Resumable renders: after each finished clip, what is needed to go on is kept on disk.

A song of a few minutes is hundreds of clips and hours of work; a crash, an out-of-memory error, a Cancel or
a reboot must not lose it. :class:`RenderState` keeps, in one folder per render:

* ``clip_NNNNN.safetensors``: the final piece clip ``N`` handed out (after any overlap blend and the song-length
  cut), in the form the caller keeps: uint8 frames ``[n, H, W, 3]`` (exactly what the mp4 writer encodes) or
  float32 latents ``[n, 4, h, w]``. Kept for every clip: the finished video is assembled from them.
* ``carry_NNNNN.safetensors``: the state the next clip starts from: the CPU generator's state (each clip's
  noise is drawn from it in turn), the frame assembler's held frames (motion frames, a waiting overlap tail),
  the clip's latents (``motion_source='latent'``) and the first clip's latents. Only the last two are kept
  (the one before the last is what a damaged last clip is redone from).
* ``manifest.json``, written last: the key (see :func:`render_key`), the number of finished clips and the
  sha256 of every file it lists.

Every file is written to a temporary name, flushed to disk (``fsync``) and renamed over its final name, and the
manifest only after the clip's files: a process killed at any instant (``kill -9``, power loss) leaves either
the previous manifest (the half-written clip is not listed: it is done again) or the new one. A listed file
whose sha256 no longer matches (a damaged disk, a hand edit) is found on opening: that clip and the ones after
it are done again from the last intact carry.

Why this gives the same video as an uninterrupted run: the continuation starts from the very tensors the
uninterrupted run held at that point (safetensors stores their bits), draws the same noise (the generator's
state is restored, not re-seeded), and what is recomputed on resume (conditions, reference rows, audio tokens)
is the same operations on the same inputs, which gives the same bits on the same machine and library versions
(which is why the device and the torch version are part of the key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from singer_core.errors import ResumeMismatchError

STATE_FORMAT = 1
MANIFEST = "manifest.json"
REFUSE, RESTART = "refuse", "restart"


# -- the key: everything that determines the result ---------------------------------------------------------------


def tensor_digest(tensors) -> str:
    """sha256 over the dtype, shape and bytes of each tensor in turn (CPU copies; order matters)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype} {tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy of the features
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 of a file's contents, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_identity(path: str | Path) -> str:
    """A model file's identity without reading it (models are gigabytes): its path, size and modification
    time (a folder: those of every file in it). A model replaced in place changes its size or time."""
    path = Path(path).resolve()
    if path.is_dir():
        listing = [f"{p.relative_to(path)} {p.stat().st_size} {p.stat().st_mtime_ns}"
                   for p in sorted(path.rglob("*")) if p.is_file()]  # fmt: skip
        return f"{path} (folder, {len(listing)} files, {hashlib.sha256(chr(10).join(listing).encode()).hexdigest()})"
    stat = path.stat()
    return f"{path} ({stat.st_size} bytes, modified {stat.st_mtime_ns})"


def render_key(reference, audio, options, output: str, device, identity: dict[str, str]) -> dict[str, str]:
    """What a render's result depends on, by name, as text (a changed entry is named in the refusal).

    Computed here: every generation option, the output kind, the device and torch version (bits are the same
    on the same machine only), digests of the prepared reference (pixels, face embedding and masks) and of the
    audio features. ``identity``: what only the caller knows (model files, the source image and song files,
    preprocessing options such as framing or decode batch)."""
    key = {"state format": str(STATE_FORMAT), "output": output, "device": str(device), "torch": torch.__version__}
    key |= {field.name: json.dumps(getattr(options, field.name)) for field in dataclasses.fields(options)}
    masks = [*reference.full_mask, *reference.face_mask, *reference.lip_mask]
    key["reference"] = tensor_digest([reference.pixels, reference.face_embedding, reference.face_region, *masks])
    embeddings = getattr(audio, "embeddings", None)
    features = embeddings if embeddings is not None else audio.windows
    key["audio features"] = f"{tensor_digest([features])} ({audio.audio_length} frames)"
    return key | {name: str(value) for name, value in identity.items()}


def key_digest(key: dict[str, str]) -> str:
    """A short name for a key (the ComfyUI sampler's state folder is named by it)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


# -- the state -------------------------------------------------------------------------------------------------


@dataclass
class Carry:
    """What clip ``next_clip`` starts from (see the module docstring); tensors on the CPU."""

    next_clip: int
    generator: torch.Tensor  # torch.Generator.get_state()
    count: int  # frames the assembler has handed out
    first: torch.Tensor  # the first clip's [reference, motion] latents
    recent: torch.Tensor | None = None  # the assembler's last final frames (motion frames)
    pending: torch.Tensor | None = None  # the assembler's waiting overlap tail
    previous: torch.Tensor | None = None  # the last clip's latents (motion_source='latent')

    TENSORS = ("generator", "first", "recent", "pending", "previous")

    def to_bytes(self) -> bytes:
        tensors = {name: getattr(self, name).detach().cpu().contiguous() for name in self.TENSORS
                   if getattr(self, name) is not None}  # fmt: skip
        return save_tensors(tensors, metadata={"next_clip": str(self.next_clip), "count": str(self.count)})

    @classmethod
    def from_file(cls, path: Path) -> Carry:
        from safetensors import safe_open

        tensors = load_tensors(path.read_bytes())
        with safe_open(path, "pt") as handle:
            metadata = handle.metadata()
        return cls(int(metadata["next_clip"]), count=int(metadata["count"]),
                   **{name: tensors.get(name) for name in cls.TENSORS})  # fmt: skip


def _clip_name(index: int) -> str:
    return f"clip_{index:05d}.safetensors"


def _carry_name(index: int) -> str:
    return f"carry_{index:05d}.safetensors"


def _write_durably(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` so that it is either the old file or the whole new one after any crash:
    a temporary file, flushed to disk, renamed over the target. Returns the sha256 of ``data``."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return hashlib.sha256(data).hexdigest()


def _sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (POSIX; Windows has no directory handles to flush)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


class RenderState:
    """The on-disk state of one render (see the module docstring).

    ``on_change``: what to do when the folder holds a render made with another key: ``'refuse'`` raises
    :class:`ResumeMismatchError` naming what changed (the command line: the user decides, ``--fresh``),
    ``'restart'`` discards it and starts over (batch rows, whose finished videos are remade on a change too).
    ``fresh``: discard any state first. Use :meth:`open` before anything else.
    """

    def __init__(self, folder: str | Path, key: dict[str, str], on_change: str = REFUSE, fresh: bool = False):
        self.folder, self.key, self.on_change, self.fresh = Path(folder), dict(key), on_change, fresh
        self.clips = 0
        self.resume_at = 0  # clips restored from disk
        self.notes: list[str] = []  # what opening found (a discarded or damaged state), for people
        self._files: dict[str, str] = {}  # name -> sha256 of the files the manifest lists

    # -- opening -------------------------------------------------------------------------------------------------

    def open(self, clips: int) -> int:
        """Read the folder's state for a render of ``clips`` clips; returns the clips already done (0: none).
        Opening again (``iter_clips`` opens what its caller may have opened to fail early) changes nothing."""
        if self.clips == clips:
            return self.resume_at
        self.clips = clips
        manifest = None if self.fresh else self._read_manifest()
        if manifest is not None and manifest.get("key") != self.key:
            changed = self.changed(manifest.get("key") or {})
            if self.on_change == REFUSE:
                raise ResumeMismatchError(
                    f"{self.folder} holds an unfinished render made with other inputs or options ({', '.join(changed)} "
                    "changed). Run the same command with --fresh to discard it and start over, or run the command "
                    "it was made with to finish it.")  # fmt: skip
            self.notes.append(f"discarded the unfinished render in {self.folder}: {', '.join(changed)} changed")
            manifest = None
        if manifest is None:
            self.remove()
            self.folder.mkdir(parents=True, exist_ok=True)
            self._files, self.resume_at = {}, 0
            return 0
        self.resume_at = self._intact_clips(manifest)
        return self.resume_at

    def changed(self, old: dict[str, str]) -> list[str]:
        """Names of the key entries that differ between ``old`` and this render."""
        return sorted(name for name in {*old, *self.key} if old.get(name) != self.key.get(name))

    def _read_manifest(self) -> dict | None:
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != STATE_FORMAT:
            return None
        return manifest

    def _intact(self, name: str, files: dict[str, str]) -> bool:
        path = self.folder / name
        return name in files and path.is_file() and file_digest(path) == files[name]

    def _intact_clips(self, manifest: dict) -> int:
        """The clips to keep: every clip before the first damaged one whose predecessor's carry is intact."""
        files, done = manifest.get("files", {}), int(manifest.get("done", 0))
        keep = next((k for k in range(done) if not self._intact(_clip_name(k), files)), done)
        while keep > 0 and not self._intact(_carry_name(keep - 1), files):
            keep -= 1  # the carry to go on from is damaged (or no longer kept): go back one clip
        if keep < done:
            self.notes.append(f"the saved state of clip {keep + 1} is damaged or incomplete: "
                              f"clips {keep + 1}..{done} are done again")  # fmt: skip
        self._files = {name: sha for name, sha in files.items()
                       if name in {_clip_name(k) for k in range(keep)} | {_carry_name(keep - 1)}}  # fmt: skip
        return keep

    # -- restoring -----------------------------------------------------------------------------------------------

    def pieces(self) -> Iterator[torch.Tensor | None]:
        """The stored pieces of the restored clips, in order (None: the clip made no frame final)."""
        for index in range(self.resume_at):
            tensors = load_tensors((self.folder / _clip_name(index)).read_bytes())
            yield tensors.get("piece")

    def carry(self) -> Carry:
        """What the first clip still to do starts from (only when :meth:`open` returned more than 0)."""
        return Carry.from_file(self.folder / _carry_name(self.resume_at - 1))

    # -- saving --------------------------------------------------------------------------------------------------

    def save(self, index: int, piece: torch.Tensor | None, carry: Carry) -> None:
        """Keep clip ``index``'s final piece and the state the next clip starts from; the manifest last."""
        tensors = {} if piece is None else {"piece": piece.detach().cpu().contiguous()}
        self._files[_clip_name(index)] = _write_durably(self.folder / _clip_name(index), save_tensors(tensors))
        self._files[_carry_name(index)] = _write_durably(self.folder / _carry_name(index), carry.to_bytes())
        stale = _carry_name(index - 2)
        self._files.pop(stale, None)
        _sync_folder(self.folder)
        manifest = {"format": STATE_FORMAT, "key": self.key, "clips": self.clips, "done": index + 1,
                    "saved": time.strftime("%Y-%m-%d %H:%M:%S"), "files": self._files}  # fmt: skip
        _write_durably(self.folder / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        _sync_folder(self.folder)
        (self.folder / stale).unlink(missing_ok=True)  # no longer listed: only now may it go

    def remove(self) -> None:
        """Delete the state (the video is complete, or the state is discarded)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def size_on_disk(folder: str | Path) -> int:
    """Bytes held by the files in ``folder`` (for the figures and the cleanup)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def remove_old_states(root: str | Path, max_age_s: float, keep: str | Path | None = None) -> list[Path]:
    """Delete the render states under ``root`` not written to for ``max_age_s`` seconds (abandoned renders),
    except ``keep``; returns what was deleted."""
    root, removed = Path(root), []
    if not root.is_dir():
        return removed
    now = time.time()
    for folder in root.iterdir():
        if not folder.is_dir() or (keep is not None and folder.resolve() == Path(keep).resolve()):
            continue
        newest = max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=folder.stat().st_mtime)
        if now - newest > max_age_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
