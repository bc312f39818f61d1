"""The `medvqa` command as a user runs it."""
from pydicom.data import get_testdata_file

from medvqa.cli import main
from tests.conftest import noise_image


def test_models_table_lists_every_family(zoo, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("vilt-tiny", "blip-tiny", "blip2-tiny", "idefics2-tiny", "idefics2-tiny-lora", "llava-tiny"):
        assert name in out
    assert "est. memory" in out and "MiB" in out


def test_ask_with_png_and_dicom(zoo, tmp_path, capsys):
    png = tmp_path / "scan.png"
    noise_image(0).save(png)
    for model in ("vilt-tiny", "idefics2-tiny-lora"):
        assert main(["ask", "--model", model, "--image", str(png), "Is there a mass?"]) == 0
        out = capsys.readouterr().out
        assert f"model:      {model}" in out and "answer:" in out and "confidence:" in out
    assert main(["ask", "--model", "llava-tiny", "--image", get_testdata_file("CT_small.dcm"), "--window", "lung",
                 "What organ is shown?"]) == 0
    assert "answer:" in capsys.readouterr().out


def test_errors_are_messages_not_tracebacks(zoo, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["ask", "--model", "vilt-tiny", "--image", str(bad), "Is there a mass?"]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["ask", "--model", "nope", "--image", get_testdata_file("CT_small.dcm"), "q?"]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err
