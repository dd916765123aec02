"""The sampler's render state on disk (``singer_core.pipeline.resume``), where ComfyUI keeps it and for how long.

Where: ``<ComfyUI>/user/singer_resume/<key digest>/``. Not ComfyUI's temp folder, although that is where
passing state belongs: ComfyUI deletes its temp folder when the server starts (``main.py``, ``cleanup_temp``,
in every version this pack supports), so a render interrupted by a server restart or a reboot would be lost
exactly when it is most needed. The user folder survives restarts, is ComfyUI's place for server-side state,
and a folder at its top level is not served to the browser (``/userdata`` serves ``user/<user name>/``);
the output folder would put the state among the user's results.

One folder per key (model file, VAE weights, prepared reference, audio features, every option, seed, device):
queueing the same graph again continues its render; changing anything starts another, so two renders are
never mixed. A finished render's folder is removed; folders not written to for ``MAX_AGE_DAYS`` (abandoned
renders) are removed when the sampler next runs; ``resume`` off discards this graph's state and keeps none.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from singer_core.pipeline.resume import (
    RenderState,
    file_identity,
    key_digest,
    remove_old_states,
    render_key,
    size_on_disk,
)
from singer_core.pipeline.resume import tensor_digest as _tensor_digest

STATE_FOLDER = "singer_resume"
MAX_AGE_DAYS = 7
_VAE_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def state_root() -> Path:
    return Path(folder_paths.get_user_directory()) / STATE_FOLDER


def vae_digest(vae) -> str:
    """sha256 of the VAE's weights (ComfyUI does not say which file a VAE object came from), computed once per
    loaded VAE: it encodes the reference and the motion frames, so it determines the result."""
    module = getattr(vae, "first_stage_model", vae)
    if module not in _VAE_DIGESTS:
        _VAE_DIGESTS[module] = _tensor_digest(module.state_dict().values())
    return _VAE_DIGESTS[module]


def open_state(model_path: str, vae, reference, features, options, device, resume: bool,
               clips: int) -> RenderState | None:  # fmt: skip
    """This render's state, opened (None with ``resume`` off, after discarding what this graph had kept);
    the server log says how many of the ``clips`` it restored."""
    identity = {"model checkpoint": file_identity(model_path), "vae weights": vae_digest(vae)}
    key = render_key(reference, features, options, "latents", device, identity)
    folder = state_root() / key_digest(key)
    remove_old_states(state_root(), MAX_AGE_DAYS * 86400, keep=folder)
    state = RenderState(folder, key, fresh=not resume)
    if not resume:
        state.remove()
        return None
    state.open(clips)
    for note in state.notes:
        print(f"[SINGER Sampler] {note}", flush=True)
    if state.resume_at:
        print(f"[SINGER Sampler] resuming at clip {state.resume_at + 1}/{clips}: {state.resume_at} clips restored "
              f"from {folder}, {clips - state.resume_at} to compute", flush=True)  # fmt: skip
    return state


def clear_states(older_than_days: float) -> str:
    """Delete the kept renders not written to for ``older_than_days`` days (0: all of them); says what it freed."""
    root = state_root()
    sizes = {folder: size_on_disk(folder) for folder in root.iterdir()} if root.is_dir() else {}
    removed = remove_old_states(root, older_than_days * 86400)
    freed = sum(sizes.get(folder, 0) for folder in removed)
    kept = len(sizes) - len(removed)
    return (f"Removed {len(removed)} kept render(s), {freed / 1e6:.1f} MB, from {root}; "
            f"{kept} newer than {older_than_days:g} day(s) kept.")  # fmt: skip


class SingerClearResumeState(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerClearResumeState",
            display_name="SINGER Clear Resume State",
            category="SINGER/sampling",
            description="Deletes the renders the SINGER Sampler keeps on disk to resume after Cancel, an error or a "
            f"restart ({STATE_FOLDER}/ in ComfyUI's user folder). A finished render removes its own; this clears "
            f"the unfinished ones (the sampler also drops those untouched for {MAX_AGE_DAYS} days). Queue it alone.",
            inputs=[
                io.Float.Input("older_than_days", default=0.0, min=0.0, max=3650.0, step=0.5,
                               tooltip="Only renders not written to for this many days; 0 = every kept render."),
            ],
            outputs=[io.String.Output(display_name="report")],
            is_output_node=True,
            not_idempotent=True,
        )

    @classmethod
    def execute(cls, older_than_days: float = 0.0) -> io.NodeOutput:
        text = clear_states(older_than_days)
        return io.NodeOutput(text, ui=ui.PreviewText(text))
