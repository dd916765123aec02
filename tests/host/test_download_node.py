"""*SINGER Download Models* in a real ComfyUI server whose HF_ENDPOINT is a local Hub (tests/fake_hub.py): it
fetches into ComfyUI's models folders with progress, Cancel keeps the partial file and the next run resumes it,
then the shipped workflow runs on the fetched files. One test (a server of its own: the endpoint is read from
the environment the server starts with)."""

from __future__ import annotations

import json
import shutil
import time
import wave
from pathlib import Path

import pytest

from tests.fake_hub import FakeHub, HubFaults, tiny_hub_repos
from tests.host.events import ServerEvents
from tests.host.harness import Prompt, load_comfy_host
from tests.host.workflow_api import workflow_to_api
from tests.test_download import DEFAULT_FILES

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
VAE = "sd-vae-ft-mse/diffusion_pytorch_model.safetensors"
FETCHED = sorted(DEFAULT_FILES)  # what the node fetches with its default groups, as the command line


def _excerpt(folder: Path) -> str:
    """0.6 s of the example song (15 frames), so the full-size VAE decodes few frames."""
    with wave.open(str(DATA / "0001.wav")) as song:
        params = song.getparams()
        frames = song.readframes(int(0.6 * params.framerate))
    with wave.open(str(folder / "excerpt.wav"), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return "excerpt.wav"


def _set(prompt: dict, class_type: str, **inputs) -> None:
    (node_id,) = [k for k, v in prompt.items() if v["class_type"] == class_type]
    for name, value in inputs.items():
        assert name in prompt[node_id]["inputs"], f"{class_type} has no input {name}"
        prompt[node_id]["inputs"][name] = value


def test_download_node_fetches_cancels_resumes_then_the_workflow_runs(tmp_path, monkeypatch):
    comfy_host = load_comfy_host()
    repos = tiny_hub_repos(tmp_path / "hub_files", comfy_vae=True)
    vae_bytes = repos["fudan-generative-ai/hallo"][VAE]
    faults = HubFaults(throttle={VAE: 20_000_000})  # ~8 s for the 167 MB VAE: time to press Cancel
    with FakeHub(repos, faults) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        base_dir = comfy_host.prepare_base_dir(tmp_path / "comfy_base")
        (base_dir / "input").mkdir(exist_ok=True)
        shutil.copy(DATA / "0001.png", base_dir / "input" / "0001.png")
        audio = _excerpt(base_dir / "input")
        models = base_dir / "models"
        # extra_model_paths.yaml with is_default: the VAE (ComfyUI's folder) and the net (the pack's) go there
        extra = tmp_path / "extra models"
        config = tmp_path / "extra_model_paths.yaml"
        config.write_text(f"elsewhere:\n  base_path: {extra}\n  is_default: true\n  vae: vae\n  singer: singer\n")
        server = comfy_host.ComfyServer(comfy_host.install(), base_dir, log_path=tmp_path / "comfyui.log",
                                        extra_args=("--extra-model-paths-config", str(config)))
        with server.start(timeout=240):
            try:
                download = Prompt()
                node = download.add("SingerDownloadModels", singer=True, vae=True, wav2vec2=True, face=True,
                                    separator=True, hallo=False)
                # 1. Cancel while the VAE is coming: the partial file stays, nothing is placed under its name
                with ServerEvents(server) as events:
                    prompt_id = events.submit(download.api())
                    partials = extra / "vae" / ".cache" / "singer-download"
                    deadline = time.monotonic() + 180
                    while not any(p.stat().st_size > 0 for p in partials.glob("*.incomplete")):
                        assert time.monotonic() < deadline, "the VAE download never started"
                        time.sleep(0.1)
                    server.interrupt()
                    outcome = server.wait(prompt_id, timeout=120)
                    assert outcome.status == "interrupted", outcome.error
                    assert events.progress(node), "no ComfyUI progress from the download node"
                (partial,) = partials.glob("*.incomplete")
                kept = partial.stat().st_size
                assert 0 < kept < len(vae_bytes)
                assert not (extra / "vae" / "sd-vae-ft-mse.safetensors").exists()
                assert (extra / "singer" / "singer_net.safetensors").is_file()  # fetched before the cancel
                # the partial file is offered by no loader
                options = server.get("/object_info/VAELoader")["VAELoader"]["input"]["required"]["vae_name"][0]
                assert not any("incomplete" in name or ".cache" in name for name in options), options
                # 2. The next run resumes the VAE from the kept bytes and fetches the rest
                faults.throttle.clear()
                outcome = server.run(download.api(), timeout=300)
                assert outcome.status == "success", outcome.error
                report = outcome.outputs[node]["text"][0]
                assert "7 fetched, 1 already present, 0 failed" in report, report
                assert "NON-COMMERCIAL RESEARCH USE ONLY" in report
                ranges = [r for method, path, r in hub.requests if method == "GET" and path.startswith("/cdn/") and r]
                assert f"bytes={kept}-" in ranges, ranges
                assert (extra / "vae" / "sd-vae-ft-mse.safetensors").read_bytes() == vae_bytes
                assert all((extra if name.startswith(("vae/", "singer/")) else models).joinpath(name).is_file()
                           for name in FETCHED)
                assert not (models / "vae").exists() or not list((models / "vae").iterdir())
                assert not (models / "singer").exists()
                # 3. The shipped workflow on the fetched files (64 px, 1 step, the full-size VAE)
                prompt = workflow_to_api(json.loads((REPO / "workflows" / "singer.json").read_text()),
                                         server.object_info())
                _set(prompt, "SingerCheckpointLoader", ckpt_name="singer_net.safetensors")
                _set(prompt, "SingerAudioEncoderLoader", wav2vec_name="wav2vec2-base-960h/model.safetensors")
                _set(prompt, "SingerFaceAnalyzerLoader", model_pack="antelopev2")
                _set(prompt, "SingerVocalSeparatorLoader", model_name="Kim_Vocal_2.onnx")
                _set(prompt, "VAELoader", vae_name="sd-vae-ft-mse.safetensors")
                _set(prompt, "LoadAudio", audio=audio)
                _set(prompt, "SingerReferenceEncode", width=64, height=64)
                _set(prompt, "SingerSampler", steps=1, dtype="fp32")
                _set(prompt, "SaveVideo", filename_prefix="singer_downloaded")
                outcome = server.run(prompt, timeout=600)
                assert outcome.status == "success", outcome.error
                assert list((base_dir / "output").rglob("singer_downloaded*.mp4"))
            except BaseException:
                print(server.log_text()[-20000:])
                raise
