"""Input checks live in the library: the same error class and words whichever host (CLI, nodes) reaches them."""

from __future__ import annotations

import numpy as np
import pytest

from singer_core.audio.chunking import LongAudioPolicy
from singer_core.errors import CheckpointError, InputError
from singer_core.face.landmarks import face_oval_box
from singer_core.face.masks import MASK_LEVEL_STRIDES, check_output_size, mask_level_sizes
from singer_core.pipeline.codec import DiffusersVAECodec
from singer_core.pipeline.options import GenerationOptions


@pytest.mark.parametrize("width, height", [(100, 512), (512, 0), (500, 512), (512, 576 + 32)])
def test_unusable_sizes_give_one_message_from_options_and_reference(width, height):
    with pytest.raises(InputError) as from_cli:
        GenerationOptions(width=width, height=height)
    with pytest.raises(InputError) as from_node:
        mask_level_sizes(height, width)  # what prepare_reference (the node's path) checks
    with pytest.raises(InputError) as direct:
        check_output_size(width, height)
    assert str(from_cli.value) == str(from_node.value) == str(direct.value)
    assert "must be a positive multiple of 64" in str(direct.value)


def test_mask_geometry_has_one_home():
    assert MASK_LEVEL_STRIDES == (8, 16, 32, 64)
    from singer_core.pipeline import inputs

    assert inputs.MASK_LEVEL_STRIDES is MASK_LEVEL_STRIDES
    assert mask_level_sizes(576, 448) == [(576 // s, 448 // s) for s in MASK_LEVEL_STRIDES]


def test_decode_batch_size_is_an_input_error():
    with pytest.raises(InputError, match="decode batch_size must be a whole number >= 1"):
        DiffusersVAECodec(object(), batch_size=0)


def test_long_audio_policy_is_an_input_error():
    with pytest.raises(InputError, match="Long-audio settings"):
        LongAudioPolicy(chunk_frames=0)


def test_wrong_landmark_model_output_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="2d106det"):
        face_oval_box(np.zeros((68, 2)))
