"""Checks only a GPU can make; run on the device machine (`pytest tests/gpu`), skipped elsewhere."""
import pytest

from tests.conftest import add_variant

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_auto_device_and_dtype_on_cuda(zoo, monkeypatch, images):
    import medvqa

    monkeypatch.setenv("MEDVQA_DEVICE", "auto")
    model = medvqa.load_model("llava-tiny")
    assert model.device == "cuda" and model.base.dtype == "bfloat16"
    assert next(model.model.parameters()).is_cuda
    assert model.answer(images[0], "What organ is shown?").text


def test_four_bit_on_cuda(scratch_zoo, monkeypatch, images):
    import medvqa

    monkeypatch.setenv("MEDVQA_DEVICE", "auto")
    model = medvqa.load_model(add_variant(scratch_zoo, "idefics2-tiny", "idefics2-tiny-4bit", quantization="4bit"))
    assert model.base.effective == "4bit (nf4, compute bfloat16) on cuda"
    assert model.answer(images[0], "Is there a mass?").text
