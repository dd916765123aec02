"""User-facing errors. Each message names the input at fault and what to do.

Hosts (the ComfyUI nodes, the CLI) show ``str(error)`` as it is, so messages
are written for the person running the workflow, not for a developer.
"""


class SingerError(Exception):
    """Base class of every error this library raises on purpose."""


class InputError(SingerError, ValueError):
    """An input (image, audio, option) cannot be used as given."""


class NoFaceError(InputError):
    """No face was found in the reference image."""


class AudioTooShortError(InputError):
    """The audio is too short (or empty) to drive even one frame."""


class ModelFileMissingError(SingerError, FileNotFoundError):
    """A model file is not where it should be."""


class CheckpointError(SingerError):
    """A checkpoint cannot be loaded: wrong kind, missing or unexpected keys."""


class CancelledError(SingerError):
    """Generation was cancelled by the caller's cancel check."""


class ResumeMismatchError(InputError):
    """A render's saved state was made with other inputs or options than the ones given now."""
