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


class DownloadError(SingerError):
    """A model file could not be fetched from the Hugging Face Hub (``python -m singer_core download``)."""


class OfflineError(DownloadError):
    """The Hub cannot be reached: HF_HUB_OFFLINE is set, or the network / HF_ENDPOINT does not answer."""


class AccessDeniedError(DownloadError):
    """The Hub refused access (HTTP 401/403): a gated or private repository, or a missing/invalid HF_TOKEN."""


class RemoteFileMissingError(DownloadError):
    """A file (or repository, or revision) is not on the Hub (HTTP 404)."""


class ChecksumMismatchError(DownloadError):
    """A downloaded file's size or hash differs from the Hub's metadata; the file was removed."""


class DiskSpaceError(DownloadError):
    """Not enough free disk space for the files still to be fetched."""


class DownloadInterruptedError(DownloadError):
    """The transfer stopped half-way; the partial file is kept (never loaded) and the next run resumes it."""


class ResumeMismatchError(InputError):
    """A render's saved state was made with other inputs or options than the ones given now."""


class RenderSpaceError(InputError):
    """The disk cannot hold a resumable render's kept frames; said before any model is loaded."""
