"""Training data: preparation of singing videos (``python -m singer_core.data prepare``) and the dataset format."""

from singer_core.data.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    ClipSample,
    DatasetFormatError,
    DatasetIndex,
    MaskLevels,
    Rejection,
    SingerDataset,
    VideoData,
    VideoFeatures,
    VideoRecord,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ClipSample",
    "DatasetFormatError",
    "DatasetIndex",
    "MaskLevels",
    "Rejection",
    "SingerDataset",
    "VideoData",
    "VideoFeatures",
    "VideoRecord",
]
