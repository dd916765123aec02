"""'SINGER Evaluate' in a real ComfyUI server: IMAGE batch + reference + AUDIO + face analyzer -> text."""

from __future__ import annotations

import pytest

from tests.host.harness import ON_0_3_75_ONLY, ON_BOTH_HOSTS, Prompt

pytestmark = [pytest.mark.host, ON_BOTH_HOSTS]


@pytest.fixture(scope="module")
def face_pack(models_dir):
    from tests.tiny_models.face_onnx import write_antelopev2

    write_antelopev2(models_dir / "insightface" / "models" / "antelopev2")
    return "antelopev2"


@ON_0_3_75_ONLY  # the metrics are the library's; VIDEO input from LoadVideo runs on both (below)
def test_evaluate_node_shows_the_metrics_as_text(comfy_server, input_dir, face_pack, run_prompt):
    prompt = Prompt()
    image = prompt.add("LoadImage", image="0001.png")
    small = prompt.add("ImageScale", image=Prompt.out(image), upscale_method="area", width=128, height=128,
                       crop="center")
    frames = prompt.add("RepeatImageBatch", image=Prompt.out(small), amount=4)
    blurred = prompt.add("ImageBlur", image=Prompt.out(frames), blur_radius=2, sigma=1.0)
    audio = prompt.add("LoadAudio", audio="0001.wav")
    faces = prompt.add("SingerFaceAnalyzerLoader", model_pack=face_pack)
    evaluate = prompt.add("SingerEvaluate", images=Prompt.out(blurred), reference_images=Prompt.out(frames),
                          audio=Prompt.out(audio), fps=25.0, face_analyzer=Prompt.out(faces))
    outcome = run_prompt(prompt, timeout=300)
    assert outcome.status == "success", outcome.error
    (text,) = outcome.outputs[evaluate]["text"]
    values = dict(line.split(": ", 1) for line in text.splitlines())
    assert 20 < float(values["psnr"]) < 60 and 0 < float(values["ssim"]) < 1, text
    assert 0 <= float(values["cpbd"]) <= 1 and float(values["diversity"]) == pytest.approx(0.0, abs=1e-3), text
    assert values["bas"].startswith("skipped"), text  # four still frames have no motion beat


def test_evaluate_node_needs_a_video(comfy_server, run_prompt):
    prompt = Prompt()
    prompt.add("SingerEvaluate", fps=25.0)
    outcome = run_prompt(prompt)
    assert outcome.status == "error"
    assert "Connect the generated video" in str(outcome.error)


def test_evaluate_node_reads_a_video_with_its_own_audio(comfy_server, input_dir, face_pack, run_prompt):
    import shutil
    from pathlib import Path

    crops = Path(__file__).resolve().parents[1] / "fixtures" / "metrics" / "syncnet_crops.mp4"
    shutil.copy(crops, input_dir / "eval_crops.mp4")  # 40 frames, 25 fps, AAC audio
    prompt = Prompt()
    video = prompt.add("LoadVideo", file="eval_crops.mp4")
    faces = prompt.add("SingerFaceAnalyzerLoader", model_pack=face_pack)
    evaluate = prompt.add("SingerEvaluate", video=Prompt.out(video), fps=1.0, reference_video=Prompt.out(video),
                          face_analyzer=Prompt.out(faces))
    outcome = run_prompt(prompt, timeout=300)
    assert outcome.status == "success", outcome.error
    (text,) = outcome.outputs[evaluate]["text"]
    values = dict(line.split(": ", 1) for line in text.splitlines())
    assert values["psnr"] == "inf" and float(values["ssim"]) == 1.0, text
    # The VIDEO's own track reached BAS/MS-Sync (they run and, on static landmarks, report why they have no value).
    assert "no audio connected" not in text and "bas" in values and "ms_sync" in values, text
