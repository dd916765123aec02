"""Training samples from a prepared dataset (``singer_core.data.format``), with every random draw seeded by
the sample's global index (and the step's number for the per-step dropouts).

Why seeded by index: the same global batch then holds the same clips, noise and timesteps whatever the number
of processes, and a resumed run draws exactly what the uninterrupted run would have drawn. Sample ``j`` of the
run is video ``perm_e[j mod n]`` of epoch ``e = j div n`` (a fresh permutation per epoch), as a shuffled
``DataLoader`` over the videos would give. Rank ``r`` of ``W`` processes takes, for micro-step ``u``, samples
``(u W + r) B .. (u W + r) B + B - 1``: the global batch of a step is the same for any ``W`` at equal ``W B``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from singer_core.data.format import DatasetFormatError, SingerDataset

_TAG_SAMPLE, _TAG_EPOCH, _TAG_STEP = 1, 2, 3


def seeded_generator(*entropy: int) -> torch.Generator:
    """A CPU generator whose seed mixes ``entropy`` (numpy's SeedSequence: independent streams per tuple)."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@dataclass(frozen=True)
class ClipShape:
    frames: int
    motion_frames: int
    latent_height: int
    latent_width: int
    latent_channels: int = 4


class TrainingClips(Dataset):
    """``clips[j]``: a dict of tensors for global sample ``j`` (see module docstring).

    Keys: ``pixels`` [f, 3, S, S] and ``ref_pixels`` [1 + m, 3, S, S] in [-1, 1] (reference frame drawn
    anywhere in the video, then the m frames before the clip); ``audio_windows`` [f, 5, L, C];
    ``face_embedding`` [512]; ``face_region`` [3, S, S]; ``{full,face,lip}_mask``: 4 levels of [1, hw];
    draws: ``noise`` [4, f, h, w], ``offset`` [4, 1, 1, 1], ``timestep`` (int64), ``latent_eps`` [f, 4, h, w]
    and ``ref_latent_eps`` [1 + m, 4, h, w] (the VAE posterior samples, official ``latent_dist.sample()``).
    """

    def __init__(self, dataset: SingerDataset, shape: ClipShape, seed: int, num_train_timesteps: int):
        self.dataset = dataset
        self.shape = shape
        self.seed = seed
        self.num_train_timesteps = num_train_timesteps
        need = shape.frames + shape.motion_frames + 1
        self.videos = [i for i, video in enumerate(dataset) if len(video) >= need]
        if not self.videos:
            raise DatasetFormatError(
                f"No video in {dataset.root} has the {need} frames a training clip needs "
                f"({shape.frames} frames + {shape.motion_frames} motion frames + 1); prepare longer videos or "
                "lower data.frames / data.motion_frames."
            )
        self.skipped = len(dataset) - len(self.videos)

    def __len__(self) -> int:
        return len(self.videos)

    def video_of(self, index: int) -> int:
        epoch, position = divmod(index, len(self.videos))
        order = torch.randperm(len(self.videos), generator=seeded_generator(self.seed, _TAG_EPOCH, epoch))
        return self.videos[int(order[position])]

    def __getitem__(self, index: int) -> dict:
        shape = self.shape
        video = self.dataset[self.video_of(index)]
        generator = seeded_generator(self.seed, _TAG_SAMPLE, index)
        frames, motion = shape.frames, shape.motion_frames
        start = int(torch.randint(motion, len(video) - frames, (1,), generator=generator))
        ref_index = int(torch.randint(0, len(video), (1,), generator=generator))
        ref_pixels = [video.pixel_values(ref_index, 1)]
        if motion:
            ref_pixels.append(video.pixel_values(start - motion, motion))
        latent = (shape.latent_channels, shape.latent_height, shape.latent_width)
        masks = video.masks
        return {
            "index": index,
            "pixels": video.pixel_values(start, frames),
            "ref_pixels": torch.cat(ref_pixels),
            "audio_windows": video.audio_windows(start, frames),
            "face_embedding": video.face_embedding.float(),
            "face_region": video.face_region,
            "full_mask": list(masks.full),
            "face_mask": list(masks.face),
            "lip_mask": list(masks.lip),
            "noise": torch.randn(latent[0], frames, *latent[1:], generator=generator),
            "offset": torch.randn(latent[0], 1, 1, 1, generator=generator),
            "timestep": torch.randint(0, self.num_train_timesteps, (), generator=generator),
            "latent_eps": torch.randn(frames, *latent, generator=generator),
            "ref_latent_eps": torch.randn(1 + motion, *latent, generator=generator),
        }


class RankSampler(Sampler[int]):
    """Global sample indices of one process from micro-step ``start`` to ``stop`` (module docstring)."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int, world: int):
        self.start, self.stop, self.batch_size, self.rank, self.world = start, stop, batch_size, rank, world

    def __iter__(self):
        for micro_step in range(self.start, self.stop):
            first = (micro_step * self.world + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch_size


@dataclass(frozen=True)
class Dropouts:
    reference: bool
    audio: bool
    motion: bool


def step_dropouts(seed: int, micro_step: int, reference: float, audio: float, motion: float) -> Dropouts:
    """The three condition dropouts of one micro-step, one draw each for the whole batch (official
    ``random.random() < ratio``); the same on every process."""
    draws = torch.rand(3, generator=seeded_generator(seed, _TAG_STEP, micro_step))
    return Dropouts(bool(draws[0] < reference), bool(draws[1] < audio), bool(draws[2] < motion))
