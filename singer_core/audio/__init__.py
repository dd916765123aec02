"""Audio side of SINGER: waveform preparation, wav2vec2 features, optional vocal separation."""

from singer_core.audio.chunking import LongAudioPolicy
from singer_core.audio.features import AudioEncoding, AudioFeatures, encode_audio, extract_audio_features
from singer_core.audio.separator import MdxParams, MdxSeparator, separate_vocals
from singer_core.audio.song import song_features
from singer_core.audio.wav2vec import load_wav2vec
from singer_core.audio.waveform import load_waveform, prepare_waveform, read_audio_file, read_mono_file

__all__ = [
    "AudioEncoding",
    "AudioFeatures",
    "LongAudioPolicy",
    "MdxParams",
    "MdxSeparator",
    "encode_audio",
    "extract_audio_features",
    "load_waveform",
    "load_wav2vec",
    "prepare_waveform",
    "read_audio_file",
    "read_mono_file",
    "separate_vocals",
    "song_features",
]
