"""``python -m singer_core batch JOBS.csv --out DIR --models MODELS [generate options]``: many videos at once.

JOBS.csv has one row per video: ``image`` and ``audio`` (paths relative to the CSV's folder), an optional
``name`` (the output is ``DIR/<name>.mp4``; default ``<image stem>_<audio stem>``) and, optionally, any
``generate`` option as a column (``seed``, ``steps``, ``size``, ``scheduler``, ``pose_weight`` or
``pose-weight`` ...) plus ``width`` / ``height``. An empty cell takes the value given on the command line,
which takes ``generate``'s default. The accepted columns are derived from the ``generate`` parser and from
:class:`~singer_core.pipeline.options.GenerationOptions`, so a new option is a new column without a change here.

Why it is built this way:

* Resumable: a finished ``DIR/<name>.mp4`` is skipped, unless its record (``DIR/.batch/videos/<name>.json``:
  the settings it was made with, its frame count, timings and frames' digest) shows that the row's settings
  changed since: then it is made again. A row is written to a hidden temporary file and renamed when
  complete, so a row interrupted half-way has no final file and is redone.
* A row that cannot be made (unreadable image, no face, missing file ...) is recorded with the library's
  error message in ``DIR/summary.csv`` / ``DIR/summary.json`` and the batch goes on. A CSV that cannot be
  read as jobs (unknown column, a value of the wrong type, an invalid option) stops the batch before any
  model is loaded, with every problem listed by row and column.
* Models are loaded once per process (the net and the VAE again only when a row asks for another dtype).
* Several processes (``accelerate launch -m singer_core batch ...`` or ``torchrun -m singer_core batch ...``):
  the rank/world size/device come from accelerate's ``PartialState``; process ``r`` of ``w`` takes the rows
  whose index ``i`` has ``i % w == r``, so no row is done twice or lost. There is no barrier (ranks with
  longer songs would hold the others in a collective past its timeout): each rank writes its part of the
  summary to ``DIR/.batch/``, and whichever rank finishes last finds every part and writes the merged summary.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import gc
import hashlib
import json
import os
import sys
import time
import traceback
import typing
from dataclasses import dataclass, field
from pathlib import Path

from singer_core.errors import InputError, SingerError

if typing.TYPE_CHECKING:
    from singer_core.pipeline.options import GenerationOptions

JOB_COLUMNS = ("image", "audio", "name")
# ``generate`` options that name files, models or the device: the same for every row (command line only).
COMMAND_LINE_ONLY = ("image", "audio", "out", "models", "checkpoint", "vae", "device", "dry_run", "help", "fresh")
STATUSES = ("done", "skipped", "failed")
SUMMARY_FIELDS = (
    "index", "name", "status", "output", "frames", "seconds", "generate_seconds", "rank", "frames_sha256", "error",
    "note",
)  # fmt: skip
PARTS_FOLDER = ".batch"
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "y", "on"), ("0", "false", "no", "n", "off")


# -- the command line -------------------------------------------------------------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``batch`` next to ``generate``, whose options it takes as the defaults of every row."""
    generate = subparsers.choices["generate"]
    parser = subparsers.add_parser(
        "batch", help="generate one video per row of a CSV (resumable, several processes/GPUs)",
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("jobs", help="CSV with columns image, audio, [name], [any generate option]")
    parser.add_argument("--out", required=True, help="output folder (DIR/<name>.mp4, DIR/summary.csv/.json)")
    parser.add_argument("--dry-run", action="store_true", help="check the CSV and the models, generate nothing")
    for action in generate._actions:
        if action.dest not in ("image", "audio", "out", "dry_run", "help"):
            parser._add_action(action)  # the very same option objects: one definition, the same defaults
    parser.set_defaults(handler=run_cli, generate_parser=generate)
    return parser


def run_cli(args: argparse.Namespace) -> int:
    """Handler of ``batch``: 0 when every row is done or skipped, 1 when a row failed (one process; with several,
    each exits 0 once its rows are done and the failed rows are counted in ``summary.json``), 2 on a bad CSV."""
    from singer_core.pipeline.model_files import locate_models

    plan = read_jobs(args.jobs, args, args.generate_parser)
    files = locate_models(args.models, checkpoint=args.checkpoint, vae=args.vae)
    out = Path(args.out)
    if args.dry_run:
        for job in plan.jobs:
            skip, _, note = existing(job, out)
            state = "exists, will be skipped" if skip else note.replace("remade", "to make again") or "to generate"
            print(f"row {job.row}: {job.name}.mp4 ({state})")
        print(f"dry run OK: {len(plan.jobs)} rows, checkpoint {files.checkpoint}; nothing generated")
        return 0
    shard = Shard.current(args.device)
    models = LoadedModels(files, shard.device)
    merged = run_jobs(plan, out, models, shard)
    shard.close()
    if shard.world > 1:
        return 0  # a non-zero exit makes torchrun/accelerate kill the ranks still running: see summary.json
    return 1 if any(row["status"] == "failed" for row in merged) else 0


# -- reading the jobs -------------------------------------------------------------------------------------------


@dataclass
class Column:
    """One per-row column: the ``generate`` argument (or ``GenerationOptions`` field) it sets and its type."""

    name: str
    kind: type
    choices: tuple | None = None
    option_field: bool = False  # a GenerationOptions field with no command-line option (width, height)


def row_columns(generate_parser: argparse.ArgumentParser) -> dict[str, Column]:
    """Per-row columns by name: every ``generate`` option except files/models/device (under its name and each
    of its option strings: ``guidance``, ``cfg``), plus the ``GenerationOptions`` fields the command line
    does not set (``width``, ``height``)."""
    from singer_core.pipeline.options import GenerationOptions

    columns: dict[str, Column] = {}
    for action in generate_parser._actions:
        if action.dest in COMMAND_LINE_ONLY:
            continue
        is_flag = action.nargs == 0 and isinstance(action.const, bool)
        kind = bool if is_flag else (action.type or str)
        column = Column(action.dest, kind, tuple(action.choices) if action.choices else None)
        for alias in (action.dest, *(normalize_column(o.lstrip("-")) for o in action.option_strings)):
            columns[alias] = column
    hints = typing.get_type_hints(GenerationOptions)
    for option in dataclasses.fields(GenerationOptions):
        if option.name not in columns:
            columns[option.name] = Column(option.name, hints[option.name], option_field=True)
    return columns


def normalize_column(header: str) -> str:
    return header.strip().lower().replace("-", "_")


def convert(value: str, column: Column):
    """A cell's text -> the column's type, or InputError saying what was expected."""
    text = value.strip()
    if column.kind is bool:
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise InputError(f"expected true or false (got {value!r})")
    try:
        converted = column.kind(text)
    except (TypeError, ValueError):
        expected = {int: "a whole number", float: "a number"}.get(column.kind, column.kind.__name__)
        raise InputError(f"expected {expected} (got {value!r})") from None
    if column.choices is not None and converted not in column.choices:
        raise InputError(f"expected one of {', '.join(map(str, column.choices))} (got {value!r})")
    return converted


@dataclass
class Job:
    """One row: where its files are and every option it runs with (``args``: the ``generate`` namespace)."""

    index: int  # 0-based data row; row = index + 1 as people count (the header is not a row)
    name: str
    image: Path
    audio: Path
    args: argparse.Namespace
    options: GenerationOptions
    cells: dict[str, str] = field(default_factory=dict)  # the values this row sets (for messages)
    settings: dict = field(default_factory=dict)  # every per-row value it runs with, files included

    @property
    def row(self) -> int:
        return self.index + 1

    def output(self, out: Path) -> Path:
        return out / f"{self.name}.mp4"


@dataclass
class JobPlan:
    csv: Path
    digest: str  # sha256 of the CSV: the per-rank summary parts of one run are merged only with each other
    jobs: list[Job]


def read_jobs(path: str | Path, defaults: argparse.Namespace, generate_parser: argparse.ArgumentParser) -> JobPlan:
    """Read and validate every row; raise one InputError listing every problem (row and column named)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Jobs file not found: {path}. Pass a CSV with columns image, audio and optionally name "
                         "and any generate option.")
    raw = path.read_bytes()
    reader = csv.DictReader(raw.decode("utf-8-sig").splitlines())
    headers = reader.fieldnames or []
    columns = row_columns(generate_parser)
    problems = _header_problems(path, headers, columns)
    if problems:
        raise InputError("\n".join(problems))
    jobs, problems = [], []
    for index, record in enumerate(reader):
        cells = {normalize_column(k): (v or "") for k, v in record.items() if k is not None}
        if None in record:
            problems.append(f"{path} row {index + 1}: more cells than columns ({record[None]!r} past the header).")
            continue
        try:
            jobs.append(_job(path, index, cells, defaults, columns))
        except InputError as error:
            problems.append(str(error))
    if not jobs and not problems:
        problems.append(f"{path} has no rows: add one line per video under the header.")
    problems += _duplicate_names(path, jobs)
    if problems:
        raise InputError("\n".join(problems))
    return JobPlan(path, hashlib.sha256(raw).hexdigest(), jobs)


def _header_problems(path: Path, headers: list[str], columns: dict[str, Column]) -> list[str]:
    names = [normalize_column(h) for h in headers]
    problems = [f"{path}: column '{h}' is not a job column or a generate option (accepted: "
                f"{', '.join([*JOB_COLUMNS, *sorted(columns)])})." for h, n in zip(headers, names, strict=True)
                if n not in columns and n not in JOB_COLUMNS]  # fmt: skip
    problems += [f"{path}: required column '{c}' is missing from the header." for c in ("image", "audio")
                 if c not in names]  # fmt: skip
    dests = [columns[n].name if n in columns else n for n in names]
    problems += [f"{path}: column '{d}' appears twice (or under two names)." for d in sorted(set(dests))
                 if dests.count(d) > 1]  # fmt: skip
    return problems


def _job(path: Path, index: int, cells: dict[str, str], defaults, columns: dict[str, Column]) -> Job:
    from singer_core.__main__ import _options, check_paste_options

    where = f"{path} row {index + 1}"
    args, fields, problems, given = copy.copy(defaults), {}, [], {}
    for column in ("image", "audio"):
        if not cells.get(column, "").strip():
            problems.append(f"{where}, column '{column}': empty; give the file path (relative to {path.parent}).")
    for name, text in cells.items():
        if name in JOB_COLUMNS or not text.strip():
            continue
        given[name] = text.strip()
        try:
            value = convert(text, columns[name])
        except InputError as error:
            problems.append(f"{where}, column '{name}': {error}.")
            continue
        (fields if columns[name].option_field else vars(args))[columns[name].name] = value
    if problems:
        raise InputError("\n".join(problems))
    try:
        options = dataclasses.replace(_options(args), **fields)
        check_paste_options(args)
        if args.decode_batch < 1:
            raise InputError(f"decode_batch must be >= 1 (got {args.decode_batch}).")
    except InputError as error:
        settings = ", ".join(f"{k}={v}" for k, v in given.items()) or "command-line values only"
        raise InputError(f"{where} ({settings}): {error}") from None
    image, audio = (path.parent / cells[c].strip() for c in ("image", "audio"))
    name = cells.get("name", "").strip() or f"{image.stem}_{audio.stem}"
    if "/" in name or "\\" in name or name.startswith("."):
        raise InputError(f"{where}, column 'name': {name!r} must be a plain file name (no folders, no leading dot).")
    settings = {"image": str(image), "audio": str(audio)}
    settings |= {c.name: getattr(options if c.option_field else args, c.name) for c in columns.values()}
    return Job(index, name, image, audio, args, options, given, settings)


def _duplicate_names(path: Path, jobs: list[Job]) -> list[str]:
    rows: dict[str, list[int]] = {}
    for job in jobs:
        rows.setdefault(job.name, []).append(job.row)
    return [f"{path} rows {', '.join(map(str, r))}: the same output name '{n}'; give each row its own name column."
            for n, r in rows.items() if len(r) > 1]  # fmt: skip


# -- processes --------------------------------------------------------------------------------------------------


@dataclass
class Shard:
    """This process's place among the batch's processes, and the device it runs on."""

    rank: int
    world: int
    device: object  # torch.device
    state: object = None  # accelerate PartialState, when launched by accelerate/torchrun

    @classmethod
    def current(cls, device: str | None = None) -> Shard:
        """Rank, world size and device from accelerate's PartialState (which reads what ``accelerate launch``
        or ``torchrun`` set: RANK, WORLD_SIZE, LOCAL_RANK, ...). ``--device cuda`` with several processes
        means each process's own GPU (``cuda:LOCAL_RANK``)."""
        import torch

        if "WORLD_SIZE" not in os.environ and "ACCELERATE_USE_CPU" not in os.environ:
            chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            return cls(0, 1, chosen)
        from accelerate import PartialState

        state = PartialState(cpu=device == "cpu")
        chosen = torch.device(device) if device else state.device
        if chosen.type == "cuda" and chosen.index is None:
            chosen = torch.device("cuda", state.local_process_index)
        return cls(state.process_index, state.num_processes, chosen, state)

    def take(self, jobs: list[Job]) -> list[Job]:
        """Rows ``i`` with ``i % world == rank``: deterministic, disjoint, covering every row."""
        return [job for job in jobs if job.index % self.world == self.rank]

    def close(self) -> None:
        """Leave the process group accelerate opened (nothing here communicates through it)."""
        import torch.distributed as dist

        if self.state is not None and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


# -- running ----------------------------------------------------------------------------------------------------


class LoadedModels:
    """The models of one process, each loaded on first use and kept for every row; the net and the VAE are
    reloaded only when a row asks for another dtype (rows are run in CSV order)."""

    def __init__(self, files, device) -> None:
        self.files, self.device = files, device
        self._face = self._wav2vec = self._separator = self._net = self._vae = None
        self._dtype: str | None = None

    def face(self):
        from singer_core.face import FaceModels

        if self._face is None:
            self._face = FaceModels.load(self.files.insightface)
        return self._face

    def wav2vec(self):
        from singer_core.audio import load_wav2vec

        if self._wav2vec is None:
            self._wav2vec = load_wav2vec(self.files.wav2vec, device=self.device)
        return self._wav2vec

    def separator(self):
        from singer_core.audio import MdxSeparator

        if self._separator is None and self.files.separator is not None:
            self._separator = MdxSeparator(self.files.separator)
        return self._separator

    def net_and_vae(self, options):
        from singer_core.pipeline import session
        from singer_core.pipeline.vae_loading import load_vae

        if self._dtype != options.dtype:
            self._net = self._vae = None
            session.release(self.device)
            self._net = session.load_net(self.files, options, self.device)
            self._vae = load_vae(self.files.vae, device=self.device, dtype=options.torch_dtype)
            self._dtype = options.dtype
        return self._net, self._vae


@dataclass
class RowResult:
    index: int
    name: str
    status: str
    output: str
    rank: int
    frames: int | None = None
    seconds: float | None = None  # the whole row: reading, face analysis, audio features, generation, writing
    generate_seconds: float | None = None  # the clips alone (sampling, decoding, encoding): what speed options change
    frames_sha256: str = ""  # of the generated uint8 frames: H.264 is not bit-reproducible, they are on one machine
    error: str = ""
    note: str = ""
    settings: dict = field(default_factory=dict)  # every per-row value the video is made with


def run_jobs(plan: JobPlan, out: Path, models: LoadedModels, shard: Shard, log=print) -> list[dict] | None:
    """Run this process's rows and write its part of the summary; returns the merged summary's rows when this
    process wrote it (it finished last, see the module docstring), else None."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    part = _part_path(out, shard)
    part.unlink(missing_ok=True)
    mine = shard.take(plan.jobs)
    results = []
    for count, job in enumerate(mine, 1):
        result = run_job(job, out, models, shard.rank)
        note = f" in {result.seconds:.1f} s ({result.frames} frames)" if result.status == "done" else ""
        error = f": {result.error}" if result.error else f" ({result.note})" if result.note else ""
        log(f"[rank {shard.rank}/{shard.world}] {count}/{len(mine)} row {job.row} {job.name}: "
            f"{result.status}{note}{error}", flush=True)  # fmt: skip
        results.append(result)
    _write_json(part, {"csv": str(plan.csv), "sha256": plan.digest, "rank": shard.rank, "world": shard.world,
                       "rows": [dataclasses.asdict(r) for r in results]})  # fmt: skip
    merged = merge_summary(plan, out, shard.world)
    if merged is not None:
        counts = {s: sum(r["status"] == s for r in merged) for s in STATUSES}
        log(f"summary: {out / 'summary.csv'} ({', '.join(f'{v} {k}' for k, v in counts.items())})", flush=True)
    else:
        log(f"[rank {shard.rank}/{shard.world}] finished; the last process to finish writes {out / 'summary.csv'}")
    return merged


def run_job(job: Job, out: Path, models: LoadedModels, rank: int = 0) -> RowResult:
    """One row: skipped if its video exists and was made with the same settings (its record says how it was
    made: frames, timings, digest are carried over); any error is caught and recorded, never raised."""
    final = job.output(out)
    result = RowResult(job.index, job.name, "skipped", str(final), rank, settings=job.settings)
    skip, record, result.note = existing(job, out)
    if skip:
        for key in ("frames", "seconds", "generate_seconds", "frames_sha256"):
            setattr(result, key, (record or {}).get(key, getattr(result, key)))
        return result
    temporary = out / f".{job.name}.tmp.mp4"
    start = time.perf_counter()
    try:
        result.frames, result.generate_seconds, result.frames_sha256 = _generate(job, temporary, models)
        os.replace(temporary, final)  # atomic: a final file is always complete
        result.status, result.seconds = "done", time.perf_counter() - start
        _write_json(_record_path(job, out), dataclasses.asdict(result))
    except Exception as error:  # noqa: BLE001 - a row's failure must not stop the batch (CUDA OOM included)
        temporary.unlink(missing_ok=True)
        result.status = "failed"
        result.error = str(error) if isinstance(error, SingerError) else f"{type(error).__name__}: {error}"
        if not isinstance(error, SingerError):
            traceback.print_exc(file=sys.stderr)
    finally:
        gc.collect()
    return result


def _generate(job: Job, path: Path, models: LoadedModels) -> tuple[int, float, str]:
    """Generate one row's video into ``path``, each clip encoded as soon as it is final (memory does not grow
    with the song, as ``generate``); returns (frames, seconds of generating and encoding, frames' sha256).

    The row is kept on disk clip by clip as the command line's ``generate`` does (``DIR/<name>.mp4.singer-resume/``,
    see ``session.write_render``): a row interrupted half-way goes on from its last finished clip, and its state
    is discarded when the row's settings or inputs changed since (the row is remade, as a finished one would be)."""
    from singer_core.audio import song_features
    from singer_core.face import prepare_reference
    from singer_core.pipeline import session
    from singer_core.pipeline.codec import DiffusersVAECodec
    from singer_core.pipeline.generate import iter_clips

    args, options = job.args, job.options
    image = session.read_image(job.image)
    separator = None if args.no_vocal_separation else models.separator()
    song, rate = session.read_song(job.audio, keep_channels=separator is not None)
    reference = prepare_reference(image, models.face(), options.width, options.height,
                                  face_expand_ratio=args.face_expand_ratio, framing=args.framing)  # fmt: skip
    audio = song_features(song, rate, models.wav2vec(), options.clip_length, options.fps, separator=separator)
    del song  # muxed from its file below
    state = session.open_render(job.output(path.parent), models.files, image, job.audio, args, reference, audio,
                                options, models.device, on_change="restart")  # fmt: skip
    net, vae = models.net_and_vae(options)
    codec = DiffusersVAECodec(vae, batch_size=args.decode_batch, tiling=args.vae_tiling)
    start = time.perf_counter()
    writer, digest = session.write_render(path, Path(job.audio), state, lambda progress: iter_clips(
        net, codec, reference, audio, options, on_progress=progress, resume=state), name=job.name,
        paste=session.paste_back(image, reference, args.full_frame, args.paste_band, args.paste_color_match))
    return writer.frames, time.perf_counter() - start, digest


# -- the summary ------------------------------------------------------------------------------------------------


def _part_path(out: Path, shard: Shard) -> Path:
    return out / PARTS_FOLDER / f"summary.rank{shard.rank}-of-{shard.world}.json"


def merge_summary(plan: JobPlan, out: Path, world: int) -> list[dict] | None:
    """Write DIR/summary.json and .csv from the per-rank parts when every rank of this CSV has written
    its part (returns the rows), else None (a rank still running will merge when it finishes)."""
    parts = []
    for rank in range(world):
        try:
            part = json.loads((out / PARTS_FOLDER / f"summary.rank{rank}-of-{world}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if part.get("sha256") != plan.digest:
            return None  # a part left by a run of another CSV
        parts.append(part)
    rows = sorted((row for part in parts for row in part["rows"]), key=lambda row: row["index"])
    if [row["index"] for row in rows] != [job.index for job in plan.jobs]:
        return None
    counts = {s: sum(row["status"] == s for row in rows) for s in STATUSES}
    _write_json(out / "summary.json", {"csv": str(plan.csv), "processes": world, "rows_total": len(rows),
                                       **counts, "rows": rows})  # fmt: skip
    temporary = out / f".summary.csv.{os.getpid()}.tmp"
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows({k: ("" if row[k] is None else row[k]) for k in SUMMARY_FIELDS} for row in rows)
    os.replace(temporary, out / "summary.csv")
    return rows


def existing(job: Job, out: Path) -> tuple[bool, dict | None, str]:
    """(skip the row?, the finished video's record, why it is made again). A video without a record (made
    before records existed, or by hand) is kept as it is."""
    if not job.output(out).is_file():
        return False, None, ""
    try:
        record = json.loads(_record_path(job, out).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return True, None, ""
    made = record.get("settings", {})
    changed = sorted(k for k in {*made, *job.settings} if made.get(k) != job.settings.get(k))
    if not changed:
        return True, record, ""
    return False, record, f"remade: {', '.join(changed)} changed since {job.name}.mp4 was made"


def _record_path(job: Job, out: Path) -> Path:
    return out / PARTS_FOLDER / "videos" / f"{job.name}.json"


def _write_json(path: Path, data: dict) -> None:
    """Atomic (temporary file + rename): ranks finishing together may both write the same summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(temporary, path)


def load_summary(out: str | Path) -> dict:
    """The merged summary of a finished batch (``DIR/summary.json``)."""
    path = Path(out) / "summary.json"
    if not path.is_file():
        raise InputError(f"No batch summary in {out}: the batch has not finished (or another process is running).")
    return json.loads(path.read_text())
