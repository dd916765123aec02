"""'SINGER Download Models': fetch the missing model files from the official Hugging Face repositories, from the
UI, only when the user runs the node (nothing happens at import or start-up).

The work is ``singer_core.download.download`` (the same table, checks and messages as the command line); this
node only chooses the groups (booleans of the fixed list: no repository id or path comes from the client), puts
each file in ComfyUI's own models folder for it (``folder_paths``, so ``extra_model_paths.yaml`` defaults are
honoured), shows ComfyUI progress and honours Cancel (the partial file stays and the next run resumes it).
"""

from __future__ import annotations

from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from singer_core.download import DEFAULT_GROUPS, GROUPS, Progress, download, licence_notice
from singer_core.errors import DownloadError
from singer_core.layout import ModelFolder


def model_folder(folder: ModelFolder) -> Path:
    """The folder ComfyUI saves ``folder``'s files to: the first of its registered paths (the default one)."""
    return Path(folder_paths.get_folder_paths(folder.name)[0])


def _progress(lines: list[str]) -> Progress:
    import comfy.model_management
    import comfy.utils

    state = {"bar": None, "done": 0}

    def start(total: int) -> None:
        state["bar"] = comfy.utils.ProgressBar(max(total, 1))

    def advance(n: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()  # Cancel: the partial file stays
        state["done"] += n
        if state["bar"] is not None:
            state["bar"].update_absolute(min(state["done"], state["bar"].total))

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    return Progress(start=start, advance=advance, log=log)


class SingerDownloadModels(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerDownloadModels",
            display_name="SINGER Download Models",
            category="SINGER/loaders",
            description="Fetches the SINGER model files that are missing into ComfyUI's models folders, from the "
            "official Hugging Face repositories (HF_TOKEN / HF_ENDPOINT / HF_HUB_OFFLINE are honoured), checking "
            "each file's size and hash. Runs only when you queue it; Cancel keeps the partial file and the next run "
            "resumes it. Refresh (R) afterwards so the loaders list the new files.\n\n" + licence_notice(
                [g.name for g in GROUPS]),
            inputs=[
                io.Boolean.Input(group.name, default=group.name in DEFAULT_GROUPS,
                                 tooltip=f"{group.what}. From {group.origin}. Licence: {group.licence}.")
                for group in GROUPS
            ],
            outputs=[io.String.Output(display_name="report")],
            is_output_node=True,
            not_idempotent=True,  # a second run checks again (and resumes what was cancelled)
        )

    @classmethod
    def execute(cls, **chosen) -> io.NodeOutput:
        groups = [group.name for group in GROUPS if chosen.get(group.name) is True]
        lines: list[str] = []
        if not groups:
            text = "Nothing chosen: switch on the model groups to fetch."
        else:
            report = download(groups, model_folder, progress=_progress(lines))
            if report.failed:  # the node turns red with the reasons, in the command line's words
                raise DownloadError(report.summary())
            text = "\n".join([*lines, report.summary()])
        return io.NodeOutput(text, ui=ui.PreviewText(text))
