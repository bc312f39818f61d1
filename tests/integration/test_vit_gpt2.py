"""ViT-GPT2 (VisionEncoderDecoderModel, the question as the decoder prefix): supervision, training, loading a hub-style
folder, and the image path the zoo pretrains. Answers, batching and LoRA sharing are covered for every family in
test_families.py and test_loader.py."""
import json
import shutil

import pytest

import medvqa
from medvqa import data
from medvqa.train.collate import Collator
from tests.integration.test_training import losses, train


@pytest.fixture
def env(scratch_zoo, phantom_data):
    return scratch_zoo


def test_labels_are_the_answer_and_end_token_after_the_question_prefix(env):
    model = medvqa.load_model("vit-gpt2-tiny")
    samples = data.load("phantom", split="train", limit=6)
    batch = Collator("vit-gpt2", model.processor, model.model.config)([(s.image, s.question, s.answer)
                                                                       for s in samples])
    tokenizer = model.processor.tokenizer
    start = model.model.config.decoder_start_token_id
    assert (batch["decoder_input_ids"][:, 0] == start).all()
    for ids, mask, labels, sample in zip(batch["decoder_input_ids"], batch["decoder_attention_mask"],
                                         batch["labels"], samples):
        prefix = tokenizer.decode(ids[mask.bool()][1:])
        assert prefix.startswith(f"question: {sample.question} answer:")
        target = tokenizer.decode(labels[labels != -100])
        assert target.strip() == sample.answer + tokenizer.eos_token
        # each label is the next decoder input: teacher forcing lines up
        real = labels != -100
        assert (labels[real][:-1] == ids[1:][real[:-1]][: int(real.sum()) - 1]).all()
    assert ((batch["labels"] != -100) <= (batch["decoder_attention_mask"] == 1)).all()


@pytest.mark.parametrize("method", ["full", "lora"])
def test_training_reduces_loss_and_the_checkpoint_answers(env, method):
    spec = train(env, "vit-gpt2", method)
    train_losses = losses(spec.name)
    assert len(train_losses) == 12 and sum(train_losses[-3:]) / 3 < sum(train_losses[:3]) / 3 - 0.1
    model = medvqa.load_model(spec.name)
    if method == "lora":
        assert model.base is medvqa.load_model("vit-gpt2-tiny").base  # shares the base's weights
    sample = data.load("phantom", split="test", limit=1)[0]
    answer = model.answer(sample.image, sample.question)
    assert answer.model == spec.name and 0 <= answer.score <= 1


def test_a_hub_style_folder_without_a_processor_file_loads(env):
    """Hub vit-gpt2 checkpoints ship preprocessor_config.json (the image processor) and a tokenizer, but no
    processor_config.json pairing them (transformers 5 saves the pairing with the image processor inside it)."""
    folder = env / "vit-gpt2-hubstyle"
    shutil.copytree(env / "vit-gpt2-tiny", folder)
    paired = json.loads((folder / "processor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps(paired["image_processor"]))
    (folder / "processor_config.json").unlink()
    spec = json.loads((folder / "medvqa.json").read_text())
    (folder / "medvqa.json").write_text(json.dumps({**spec, "name": "vit-gpt2-hubstyle"}))
    sample = data.load("phantom", split="test", limit=1)[0]
    assert (medvqa.load_model("vit-gpt2-hubstyle").answer(sample.image, sample.question).text
            == medvqa.load_model("vit-gpt2-tiny").answer(sample.image, sample.question).text)


def test_vision_pretraining_trains_the_vit_encoder_only(env):
    from medvqa import registry
    from medvqa.model_cache import CACHE
    from medvqa.zoo import pretrain_base

    spec = registry.get_spec("vit-gpt2-tiny")
    before = {k: v.clone() for k, v in medvqa.load_model(spec.name).model.state_dict().items()}
    CACHE.unload_all()
    pretrain_base(spec, steps=3, progress=lambda _: None)
    after = medvqa.load_model(spec.name).model.state_dict()
    changed = {k for k in before if not before[k].equal(after[k])}
    assert changed and all(k.startswith("encoder.") for k in changed)
