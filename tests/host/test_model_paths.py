"""The model-file table that ``tools/comfy_host.py serve`` reports from (no server needed)."""

from __future__ import annotations

from nodes.model_paths import REQUIRED_MODELS, missing_model_report, missing_models


def test_everything_is_missing_in_an_empty_models_folder(tmp_path):
    assert missing_models(tmp_path) == list(REQUIRED_MODELS)
    report = missing_model_report(tmp_path)
    for required in REQUIRED_MODELS:
        assert str(tmp_path / required.folder.name / required.suggested) in report
    assert report.count("[optional]") == sum(r.optional for r in REQUIRED_MODELS) == 1


def test_files_in_place_are_not_reported(tmp_path):
    (tmp_path / "singer").mkdir()
    (tmp_path / "singer" / "net.pth").write_bytes(b"x")
    (tmp_path / "wav2vec2" / "wav2vec2-base-960h").mkdir(parents=True)
    (tmp_path / "wav2vec2" / "wav2vec2-base-960h" / "config.json").write_text("{}")
    faces = tmp_path / "insightface" / "models" / "antelopev2"
    faces.mkdir(parents=True)
    (faces / "scrfd_10g_bnkps.onnx").write_bytes(b"x")
    (faces / "2d106det.onnx").write_bytes(b"x")
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "readme.txt").write_text("wrong kind of file")

    missing = {(m.folder.name, m.suggested.split(" ")[0]) for m in missing_models(tmp_path)}
    assert missing == {
        ("insightface", "models/antelopev2/glintr100.onnx"),
        ("vae", "sd-vae-ft-mse/"),
        ("audio_separator", "Kim_Vocal_2.onnx"),
    }
