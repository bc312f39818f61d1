"""Fine-tuning every family: supervision masks, loss going down, QLoRA, two-stage, resume after SIGKILL, registry."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import medvqa
from medvqa import data
from medvqa.store import Store
from medvqa.train import TrainConfig, run
from medvqa.train.collate import Collator
from tests.conftest import hang_guard


@pytest.fixture
def env(scratch_zoo, phantom_data):
    return scratch_zoo


def logged(name, split="train"):
    """The run's logged steps of one split, in step order."""
    logs = Store().training_logs(name)
    return logs[logs.split == split]


def losses(name, split="train"):
    return logged(name, split).loss.tolist()


def train(env, family, method="full", name=None, **kw):
    settings = dict(family=family, base=str(env / f"{family}-tiny"), output=str(env / (name or f"{family}-{method}")),
                    method=method, train_limit=16, val_limit=8, batch_size=8, max_steps=12, lr=3e-3, eval_every=6,
                    warmup=0, seed=0, lora_r=8, lora_alpha=16, lora_dropout=0.0)
    return run(TrainConfig(**{**settings, **kw}), progress=False)


@pytest.mark.parametrize("family", ["idefics2", "llava", "blip2"])
def test_decoder_only_labels_cover_the_answer_only(env, family):
    model = medvqa.load_model(f"{family}-tiny")
    samples = data.load("phantom", split="train", limit=4)
    batch = Collator(family, model.processor, model.model.config)([(s.image, s.question, s.answer) for s in samples])
    tokenizer = model.processor.tokenizer
    for labels, sample in zip(batch["labels"], samples):
        target = tokenizer.decode(labels[labels != -100])
        assert target.strip().startswith(sample.answer) and sample.question not in target
        end = "<end_of_utterance>" if family == "idefics2" else tokenizer.eos_token
        assert target.endswith(end)
    image_token = model.processor.image_token_id if family != "blip2" else model.model.config.image_token_index
    assert not ((batch["input_ids"] == image_token) & (batch["labels"] != -100)).any()


@pytest.mark.parametrize("family", ["idefics2", "llava", "vilt"])
def test_cached_image_processing_gives_the_same_batches(env, family):
    """Training resizes and normalises each image once. Idefics2's processor hands over converted copies whose ids
    are reused once freed, so the cache is keyed by pixels: a second epoch must see exactly the first one's tensors."""
    import torch

    model = medvqa.load_model(f"{family}-tiny")
    rows = [(s.image, s.question, s.answer) for s in data.load("phantom", split="train", limit=24)]
    plain = Collator(family, model.processor, model.model.config)
    from transformers import AutoProcessor

    cached = Collator(family, AutoProcessor.from_pretrained(env / f"{family}-tiny"), model.model.config,
                      cache_images=True)
    for epoch in range(2):
        for start in range(0, len(rows), 8):
            a, b = plain(rows[start : start + 8]), cached(rows[start : start + 8])
            assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), (epoch, start)
    images = {s.image_id for s in data.load("phantom", split="train", limit=24)}
    assert len(cached.image_cache.cache) == len(images)
    assert type(cached.processor.image_processor).__name__ != "CachedImageProcessor"  # saved plain


def test_blip_decoder_inputs_start_with_dec_and_mask_padding(env):
    model = medvqa.load_model("blip-tiny")
    samples = data.load("phantom", split="train", limit=6)
    batch = Collator("blip", model.processor, model.model.config)([(s.image, s.question, s.answer) for s in samples])
    dec = model.processor.tokenizer.convert_tokens_to_ids("[DEC]")
    assert (batch["decoder_input_ids"][:, 0] == dec).all()
    assert ((batch["labels"] == -100) == (batch["decoder_attention_mask"] == 0)).all()


@pytest.mark.parametrize("family, method", [("vilt", "full"), ("blip", "full"), ("blip2", "lora"),
                                            ("idefics2", "lora"), ("llava", "full"), ("biomedclip-llm", "lora")])
def test_training_reduces_loss_and_registers_a_working_checkpoint(env, family, method):
    spec = train(env, family, method)
    train_losses = losses(spec.name)
    assert len(train_losses) == 12 and sum(train_losses[-3:]) / 3 < sum(train_losses[:3]) / 3 - 0.1
    assert len(losses(spec.name, "validation")) == 2
    listed = {s.name: s for s in medvqa.list_models()}
    assert spec.name in listed and listed[spec.name].trained_on == ("phantom",)
    assert listed[spec.name].extra["method"] == method and listed[spec.name].extra["hyperparameters"]["lr"] == 3e-3
    if family == "vilt":  # the head was rebuilt over the training answers
        answers = {s.answer.lower() for s in data.load("phantom", split="train", limit=16, seed=0)}
        assert set(medvqa.load_model(spec.name).model.config.label2id) == answers
    image = data.load("phantom", split="test", limit=1)[0].image
    answer = medvqa.load_model(spec.name).answer(image, "what modality is this?")
    assert isinstance(answer.text, str) and 0 <= answer.score <= 1 and answer.model == spec.name


def test_qlora_steps_reduce_loss(env):
    spec = train(env, "idefics2", "qlora", max_steps=10)
    train_losses = losses(spec.name)
    assert train_losses[-1] < train_losses[0]
    model = medvqa.load_model(spec.name)
    assert spec.quantization == "4bit" and model.base.effective.startswith("4bit")


def test_two_stage_caption_then_vqa(env):
    stage1 = train(env, "idefics2", "lora", name="idefics2-captions", task="caption", max_steps=6)
    stage2 = train(env, "idefics2", "lora", name="idefics2-two-stage", init_adapter=str(env / "idefics2-captions"),
                   max_steps=6)
    assert stage1.extra["task"] == "caption" and stage2.extra["hyperparameters"]["init_adapter"].endswith("captions")
    model = medvqa.load_model("idefics2-two-stage")
    assert model.base is medvqa.load_model("idefics2-tiny").base  # shares the base with the zero-shot variant


def test_two_stage_full_fine_tune_starts_from_the_stage_one_weights(env):
    """The demo zoo's two-stage Idefics2: stage 2 is a full fine-tune whose base is the stage-1 folder."""
    from safetensors import safe_open

    stage1 = train(env, "idefics2", name="idefics2-captions-full", task="caption", max_steps=4,
                   freeze=r"(vision_model|connector)\.")
    stage2 = train(env, "idefics2", name="idefics2-two-stage-full", base=str(env / "idefics2-captions-full"),
                   max_steps=4, freeze=r"(vision_model|connector)\.")
    assert stage2.extra["started_from"].endswith("idefics2-captions-full") and stage2.extra["task"] == "vqa"

    def tensor(name, key):
        with safe_open(str(env / name / "model.safetensors"), "pt") as f:
            return f.get_tensor(key)

    frozen = "model.connector.perceiver_resampler.latents"  # frozen in both stages: identical along the chain
    assert tensor("idefics2-tiny", frozen).equal(tensor(stage1.name, frozen))
    assert tensor(stage1.name, frozen).equal(tensor(stage2.name, frozen))
    trained = "lm_head.weight"
    assert not tensor(stage1.name, trained).equal(tensor(stage2.name, trained))
    assert medvqa.load_model(stage2.name).answer(data.load("phantom", split="test", limit=1)[0].image,
                                                 "what modality is this?").model == stage2.name


@pytest.mark.parametrize("family", ["idefics2", "vilt"])
def test_vision_pretraining_trains_the_image_path_only_and_is_recorded(env, family):
    """`zoo build` pretrains each base's image path (Idefics2: tower and connector) before VQA; the language side
    stays as it was, and medvqa.json records the steps and the validation accuracy per concept group."""
    import json

    import torch

    from medvqa import registry
    from medvqa.model_cache import CACHE
    from medvqa.zoo import pretrain_base

    spec = registry.get_spec(f"{family}-tiny")
    before = medvqa.load_model(spec.name).model.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    CACHE.unload_all()
    pretrain_base(spec, steps=3, progress=lambda message: None)
    after = medvqa.load_model(spec.name).model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    image_path = ("model.vision_model.", "model.connector.") if family == "idefics2" else ("vilt.",)
    assert changed and all(k.startswith(image_path) for k in changed)
    if family == "idefics2":
        assert any(k.startswith("model.connector.") for k in changed)
        assert not any(k.startswith(("model.text_model.", "lm_head.")) for k in changed)
    recorded = json.loads((env / spec.name / "medvqa.json").read_text())["vision_pretraining"]
    assert recorded["steps"] == 3 and {"modality", "side", "count"} <= set(recorded["validation_accuracy"])
    assert all(0 <= v <= 1 for v in recorded["validation_accuracy"].values())


@pytest.mark.timeout(hang_guard(60))
def test_training_killed_midway_resumes_from_its_last_saved_step(env):
    args = [sys.executable, "-m", "medvqa.cli", "train", "--family", "llava", "--base", str(env / "llava-tiny"),
            "--output", str(env / "llava-resume"), "--train-limit", "16", "--batch-size", "4", "--max-steps", "40",
            "--save-every", "5", "--eval-every", "100", "--lr", "1e-3"]
    proc = subprocess.Popen(args, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = env / "llava-resume" / "_resume" / "state.json"
    deadline = time.time() + hang_guard(30)  # only a hang gets there; the kill waits for the first resume point
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its first save: " + proc.stdout.read()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state.exists(), "the run must be killed after its first save"
    before = len(losses("llava-resume"))
    assert 5 <= before < 40
    again = subprocess.run(args, env=os.environ.copy(), capture_output=True, text=True, timeout=hang_guard(30))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming llava-resume from step" in again.stdout
    steps = logged("llava-resume").step.tolist()
    assert steps == list(range(1, 41))  # every step logged once
    assert not (env / "llava-resume" / "_resume").exists() and (env / "llava-resume" / "medvqa.json").exists()


@pytest.mark.timeout(hang_guard(60))
def test_two_processes_train_one_lora_under_accelerate_launch_and_resume(env):
    """`accelerate launch --multi_gpu --num_processes 2` on this GPU-less machine starts two processes through
    torchrun that train together over gloo (accelerate's `--cpu` flag starts one process unless mpirun is set up):
    `medvqa train` runs unchanged, both processes train, the main one logs and writes one checkpoint, the loss
    falls, and a killed run resumes from its saved step."""
    from pathlib import Path

    out = env / "llava-ddp"
    args = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "medvqa.cli", "train",
            "--family", "llava", "--base", str(env / "llava-tiny"), "--output", str(out), "--method", "lora",
            "--train-limit", "32", "--batch-size", "4", "--max-steps", "30", "--save-every", "10",
            "--eval-every", "100", "--lr", "3e-3", "--warmup", "0"]
    proc = subprocess.Popen(args, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = out / "_resume" / "state.json"
    deadline = time.time() + hang_guard(30)  # only a hang gets there; the kill waits for the first resume point
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its first save: " + proc.stdout.read()[-3000:]
    import psutil

    launcher = psutil.Process(proc.pid)  # torchrun starts its workers in sessions of their own: kill the whole tree
    for process in [*launcher.children(recursive=True), launcher]:
        process.kill()
    proc.wait()
    saved = json.loads(state.read_text())["step"]
    assert saved == 10 and 10 <= len(losses("llava-ddp")) < 30
    again = subprocess.run(args, env=os.environ.copy(), capture_output=True, text=True, timeout=hang_guard(30))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "process 1 of 2" in again.stdout and "process 2 of 2" in again.stdout  # both processes trained
    assert again.stdout.count("resuming llava-ddp from step 10") == 1  # said once, by the main process
    steps = logged("llava-ddp").step.tolist()
    assert steps == list(range(1, 31))  # each step logged once, by the main process only
    train_losses = losses("llava-ddp")
    assert sum(train_losses[-5:]) / 5 < sum(train_losses[:5]) / 5  # the loss falls
    assert (out / "medvqa.json").exists() and (out / "adapter_model.safetensors").exists()
    assert not (out / "_resume").exists()
    from tests.conftest import noise_image

    assert medvqa.registry.parse_spec(out / "medvqa.json").adapter == "."
    assert medvqa.load_model("llava-ddp").answer(noise_image(0), "Is there a mass?").model == "llava-ddp"
