"""``python -m singer_core download``: the real huggingface_hub client against a local Hub
(``tests/fake_hub.py``, pointed at with ``HF_ENDPOINT``) serving the tiny models in the official
repositories' layout."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from singer_core.__main__ import main
from singer_core.download import (
    GROUPS,
    STATE_DIR,
    RemoteFile,
    parse_only,
    pick_singer_net,
)
from singer_core.errors import DownloadError, RemoteFileMissingError
from tests.fake_hub import FakeHub, HubFaults, tiny_hub_repos

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
NET = "pretrained_models/net.safetensors"
SEPARATOR = "audio_separator/Kim_Vocal_2.onnx"
DEFAULT_FILES = {
    "singer/singer_net.safetensors",
    "vae/sd-vae-ft-mse.safetensors",
    "wav2vec2/wav2vec2-base-960h/config.json",
    "wav2vec2/wav2vec2-base-960h/model.safetensors",
    "insightface/models/antelopev2/scrfd_10g_bnkps.onnx",
    "insightface/models/antelopev2/glintr100.onnx",
    "insightface/models/antelopev2/2d106det.onnx",
    "audio_separator/Kim_Vocal_2.onnx",
}


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    return tiny_hub_repos(tmp_path_factory.mktemp("hub_files"))


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """A started local Hub with ``HF_ENDPOINT`` pointing at it; ``hub_env(faults)`` -> the hub."""
    hubs = []

    def start(repos, faults: HubFaults | None = None) -> FakeHub:
        hub = FakeHub(repos, faults).__enter__()
        hubs.append(hub)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        return hub

    yield start
    for hub in hubs:
        hub.__exit__(None, None, None)


def download(models: Path, *extra: str) -> int:
    return main(["download", "--models", str(models), *extra])


def files_under(models: Path) -> set[str]:
    """Every file under ``models`` except our hidden state folders."""
    return {p.relative_to(models).as_posix() for p in models.rglob("*") if p.is_file() and ".cache" not in p.parts}


def test_fresh_fetch_lands_where_the_loaders_look_then_generates(repos, hub_env, tmp_path, capsys):
    hub = hub_env(repos)
    models = tmp_path / "models"
    assert download(models) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "downloading: 100%" in captured.err  # the progress bar over every byte
    for group in GROUPS:  # the licence and origin of every group fetched, before anything else
        if group.default:
            assert group.licence in out.split("Summary")[0]
    assert "NON-COMMERCIAL RESEARCH USE ONLY" in out
    assert "8 fetched, 0 already present, 0 failed" in out
    assert files_under(models) == DEFAULT_FILES
    hallo = repos["fudan-generative-ai/hallo"]
    assert (models / "vae/sd-vae-ft-mse.safetensors").read_bytes() == hallo[
        "sd-vae-ft-mse/diffusion_pytorch_model.safetensors"]
    assert (models / "singer/singer_net.safetensors").read_bytes() == repos["yl2333/SINGER"][NET]
    # the pack's loaders take them: the CLI's locate_models and a whole generation (64 px, 1 step)
    from singer_core.pipeline.model_files import locate_models

    files = locate_models(models)
    assert files.separator == models / "audio_separator/Kim_Vocal_2.onnx"
    assert files.wav2vec == models / "wav2vec2/wav2vec2-base-960h"
    video = tmp_path / "out.mp4"
    assert main(["generate", "--image", str(DATA / "0001.png"), "--audio", str(_excerpt(tmp_path)), "--out",
                 str(video), "--models", str(models), "--size", "64", "--steps", "1", "--clip-length", "8"]) == 0
    assert video.stat().st_size > 0
    # a second run asks for the listings only and fetches nothing
    fetched = len(hub.downloads())
    assert download(models) == 0
    assert "0 fetched, 8 already present, 0 failed" in capsys.readouterr().out
    assert len(hub.downloads()) == fetched


def _excerpt(tmp_path: Path) -> Path:
    """0.6 s of the example song (15 frames: two clips of 8)."""
    import wave

    with wave.open(str(DATA / "0001.wav")) as song:
        params = song.getparams()
        frames = song.readframes(int(0.6 * params.framerate))
    path = tmp_path / "excerpt.wav"
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return path


def test_a_download_killed_mid_file_resumes_and_verifies(repos, hub_env, tmp_path):
    from huggingface_hub import constants

    # A file of several of the client's 10 MB chunks: it writes whole chunks, so a kill keeps the ones received.
    chunk = constants.DOWNLOAD_CHUNK_SIZE
    net = os.urandom(2 * chunk + 12345)
    hallo = {**repos["fudan-generative-ai/hallo"], "hallo/net.pth": net}
    faults = HubFaults(stall_after={"hallo/net.pth": chunk + chunk // 2})
    hub = hub_env({**repos, "fudan-generative-ai/hallo": hallo}, faults)
    models = tmp_path / "models"
    child = subprocess.Popen([sys.executable, "-m", "singer_core", "download", "--models", str(models), "--only",
                              "hallo"], cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    partials = models / "singer" / STATE_DIR
    try:
        deadline = time.monotonic() + 120
        while sum(p.stat().st_size for p in partials.glob("*.incomplete")) < chunk:
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the transfer never reached the stall"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (partial,) = partials.glob("*.incomplete")
    assert partial.stat().st_size == chunk
    assert not (models / "singer" / "hallo_net.pth").exists()
    # the partial file is invisible to the loaders: the singer folder still counts as empty
    from nodes.model_paths import SINGER as SINGER_FOLDER
    from nodes.model_paths import missing_models

    assert SINGER_FOLDER in {m.folder for m in missing_models(models)}
    faults.release.set()
    sent_before = hub.served["hallo/net.pth"]
    assert download(models, "--only", "hallo") == 0
    assert (models / "singer" / "hallo_net.pth").read_bytes() == net
    assert not partial.exists()
    resumed = [rng for method, path, rng in hub.requests if method == "GET" and path.startswith("/cdn/")][-1]
    assert resumed == f"bytes={chunk}-"
    assert hub.served["hallo/net.pth"] - sent_before == len(net) - chunk  # only what the partial file lacked


def test_a_stalled_transfer_says_it_resumes(repos, hub_env, tmp_path):
    from huggingface_hub import constants

    chunk = constants.DOWNLOAD_CHUNK_SIZE
    hallo = {**repos["fudan-generative-ai/hallo"], "hallo/net.pth": os.urandom(2 * chunk)}
    hub_env({**repos, "fudan-generative-ai/hallo": hallo}, HubFaults(stall_after={"hallo/net.pth": chunk + 1000}))
    models = tmp_path / "models"
    env = dict(os.environ, HF_HUB_DOWNLOAD_TIMEOUT="1")  # the client's read timeout, read at its import
    run = subprocess.run([sys.executable, "-m", "singer_core", "download", "--models", str(models), "--only", "hallo"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "The download of hallo/net.pth from fudan-generative-ai/hallo stopped after 10.5 MB of 21.0 MB" in run.stderr
    assert "run the download again to resume it" in run.stderr
    (partial,) = (models / "singer" / STATE_DIR).glob("*.incomplete")
    assert partial.stat().st_size == chunk
    assert not (models / "singer" / "hallo_net.pth").exists()


def test_a_corrupted_download_is_removed_and_not_used(repos, hub_env, tmp_path, capsys):
    hub_env(repos, HubFaults(corrupt={SEPARATOR}))
    models = tmp_path / "models"
    assert download(models, "--only", "separator") == 1
    out = capsys.readouterr().out
    assert "does not match the Hub's metadata" in out and "The file was removed and not used" in out
    assert "Kim_Vocal_2.onnx" in out
    assert not (models / "audio_separator").exists() or files_under(models) == set()
    assert not list((models / "audio_separator").rglob("*.incomplete"))


def test_a_damaged_file_in_place_is_fetched_again(repos, hub_env, tmp_path, capsys):
    hub_env(repos)
    models = tmp_path / "models"
    assert download(models, "--only", "separator") == 0
    target = models / "audio_separator/Kim_Vocal_2.onnx"
    target.write_bytes(b"\0" * target.stat().st_size)  # same size, other bytes: the record no longer matches
    assert download(models, "--only", "separator") == 0
    assert "1 fetched" in capsys.readouterr().out
    assert target.read_bytes() == repos["fudan-generative-ai/hallo"][SEPARATOR]


def test_gated_repository_says_to_set_hf_token(repos, hub_env, tmp_path, capsys, monkeypatch):
    hub_env(repos, HubFaults(token="hf_secret"))
    models = tmp_path / "models"
    assert download(models, "--only", "separator") == 1
    out = capsys.readouterr().out
    assert "HTTP 401" in out and "set HF_TOKEN" in out and "fudan-generative-ai/hallo" in out
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert download(models, "--only", "separator") == 0


def test_missing_file_is_named_with_the_manual_route(repos, hub_env, tmp_path, capsys):
    hub_env(repos, HubFaults(gone={SEPARATOR}))  # listed, but the download answers 404
    models = tmp_path / "models"
    assert download(models, "--only", "separator,vae") == 1
    out = capsys.readouterr().out
    assert "audio_separator/Kim_Vocal_2.onnx" in out and "HTTP 404" in out
    assert "README.md, section 'Model files and where they go'" in out
    assert "1 fetched" in out  # the VAE still came
    hallo = {k: v for k, v in repos["fudan-generative-ai/hallo"].items() if k != "face_analysis/models/glintr100.onnx"}
    hub_env({**repos, "fudan-generative-ai/hallo": hallo})  # not in the listing at all
    assert download(tmp_path / "other", "--only", "face") == 1
    out = capsys.readouterr().out
    assert "face_analysis/models/glintr100.onnx is not in fudan-generative-ai/hallo" in out
    assert "models/insightface/models/antelopev2/glintr100.onnx" in out


def test_offline_mode_and_an_unreachable_hub_are_reported(repos, hub_env, tmp_path, capsys, monkeypatch):
    hub = hub_env(repos)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download(tmp_path / "models") == 2
    assert "Offline mode is on (HF_HUB_OFFLINE is set)" in capsys.readouterr().err
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert download(tmp_path / "models") == 2
    err = capsys.readouterr().err
    assert f"Cannot reach the Hugging Face Hub at http://127.0.0.1:{port}" in err
    assert hub.downloads() == []


def test_not_enough_disk_space_is_refused_before_any_transfer(repos, hub_env, tmp_path, capsys):
    huge = 10**18  # the listing claims an exabyte
    hub = hub_env(repos, HubFaults(listed_size={NET: huge}))
    assert download(tmp_path / "models", "--only", "singer,separator") == 2
    err = capsys.readouterr().err
    assert "Not enough disk space in" in err and "need 1000000.0 TB" in err
    assert hub.downloads() == []


def test_fp16_conversion_replaces_the_download_and_counts_as_present(repos, hub_env, tmp_path, capsys):
    hub = hub_env(repos)
    models = tmp_path / "models"
    assert download(models, "--only", "singer", "--fp16-safetensors") == 0
    assert files_under(models) == {"singer/singer_net_fp16.safetensors"}
    with safe_open(str(models / "singer/singer_net_fp16.safetensors"), framework="pt") as handle:
        dtypes = {handle.get_tensor(k).dtype for k in handle.keys()}
    assert dtypes == {torch.float16}
    fetched = len(hub.downloads())
    capsys.readouterr()
    assert download(models, "--only", "singer", "--fp16-safetensors") == 0
    assert "0 fetched, 1 already present" in capsys.readouterr().out
    assert len(hub.downloads()) == fetched


def _listing(*paths: str) -> dict[str, RemoteFile]:
    return {p: RemoteFile("yl2333/SINGER", p, "0" * 40, 1, None, "0" * 40) for p in paths}


def test_the_singer_net_is_found_through_the_listing():
    pick = pick_singer_net
    assert pick(_listing("README.md", "ckpt/stage2/net.pth", "net.safetensors"))[0][0] == "ckpt/stage2/net.pth"
    assert pick(_listing("a/net.pth", "a/b/net.pth"))[0][2] == "singer_net.pth"
    with pytest.raises(RemoteFileMissingError, match="Several SINGER nets"):
        pick(_listing("a/net.pth", "b/net.pth"))
    with pytest.raises(RemoteFileMissingError, match="net.pth is not in yl2333/SINGER"):
        pick(_listing("README.md", "unet.pth"))


def test_only_accepts_the_fixed_groups():
    assert parse_only("face,singer") == ("singer", "face")
    assert "hallo" not in parse_only(None)
    with pytest.raises(DownloadError, match="unknown model group.*repo/x.*choose from singer"):
        parse_only("repo/x")


def test_a_digest_is_what_the_hub_lists(tmp_path):
    from singer_core.download import file_digest

    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    assert file_digest(path, "sha256") == hashlib.sha256(b"hello\n").hexdigest()
    assert file_digest(path, "git-sha1") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`


def test_the_command_serve_prints_fetches_every_missing_model(repos, hub_env, tmp_path):
    from nodes.model_paths import download_command, missing_model_report

    hub_env(repos)
    models = tmp_path / "comfy models"  # a space: the printed command must quote it
    report = missing_model_report(models)
    command = download_command(models)
    assert command in report
    run = subprocess.run(command, shell=True, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert missing_model_report(models) == "All SINGER model files are in place."


def test_a_second_download_of_the_same_file_is_refused_while_one_runs(repos, hub_env, tmp_path, capsys):
    from filelock import FileLock

    from singer_core.download import Report as DownloadReport
    from singer_core.download import models_root_folders, plan

    hub_env(repos)
    models = tmp_path / "models"
    (item,) = plan(["separator"], models_root_folders(models), None, DownloadReport())
    item.partial.parent.mkdir(parents=True)
    with FileLock(str(item.partial) + ".lock"):  # what a running download holds
        assert download(models, "--only", "separator") == 1
    assert "is already being downloaded" in capsys.readouterr().out
    assert download(models, "--only", "separator") == 0


def test_fp16_after_a_plain_download_converts_without_fetching_again(repos, hub_env, tmp_path, capsys):
    hub = hub_env(repos)
    models = tmp_path / "models"
    assert download(models, "--only", "singer") == 0
    fetched = len(hub.downloads())
    assert download(models, "--only", "singer", "--fp16-safetensors") == 0
    assert len(hub.downloads()) == fetched
    assert files_under(models) == {"singer/singer_net_fp16.safetensors"}


def test_revision_pins_the_commit_and_an_unknown_one_is_named(repos, hub_env, tmp_path, capsys):
    hub = hub_env(repos)
    commit = hub.commit("fudan-generative-ai/hallo")
    assert download(tmp_path / "a", "--only", "separator", "--revision", commit) == 0
    assert any(f"/resolve/{commit}/audio_separator/" in path for _, path, _ in hub.requests)
    capsys.readouterr()
    assert download(tmp_path / "b", "--only", "separator", "--revision", "v9") == 1
    out = capsys.readouterr().out
    assert "the file list of fudan-generative-ai/hallo at revision v9 was not found on the Hub" in out
