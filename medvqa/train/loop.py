"""The training loop behind `medvqa train`: one loop for every family and method, resumable after a kill."""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import time
from pathlib import Path

from .. import config, data, ood, registry
from ..datatypes import ModelSpec
from ..models import family_class
from ..store import Store
from .collate import Collator
from .config import TrainConfig

RESUME_DIR = "_resume"


def run(cfg: TrainConfig, store: Store | None = None, progress: bool = True, on_step=None) -> ModelSpec:
    """Train as configured (`on_step(item, step, steps)` hears of each step in the main process). Under
    `accelerate launch` (several processes: DDP, or FSDP / DeepSpeed through an
    accelerate config) each process trains on its own share of every step's batches, gradients are averaged by the
    wrapped model, and only the main process logs, saves and resumes; alone it is the plain single-device loop."""
    import torch
    from tqdm import tqdm

    accelerator = _accelerator(cfg)
    main = accelerator.is_main_process
    store = (store or Store()) if main else None
    torch.manual_seed(cfg.seed)  # the same seed everywhere: every process starts from the same new weights
    random.seed(cfg.seed)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    train_rows, val_rows = _examples(cfg, cfg.split, cfg.train_limit), _examples(cfg, cfg.val_split, cfg.val_limit)
    model, processor = _load(cfg, [r[-1] for r in train_rows], accelerator.device)
    collate = Collator(cfg.family, processor, model.config, cfg.task, cache_images=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = (torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.optimizer == "adamw"
                 else torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
    world = accelerator.num_processes
    per_epoch = math.ceil(len(train_rows) / (cfg.batch_size * cfg.grad_accum * world))
    total = cfg.max_steps or max(1, math.ceil(per_epoch * cfg.epochs))
    warmup = int(cfg.warmup * total) if cfg.warmup < 1 else int(cfg.warmup)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    start = _resume(out, cfg, model, optimizer, schedule, announce=main)
    if world > 1:
        print(f"process {accelerator.process_index + 1} of {world} on {accelerator.device}: "
              f"{cfg.batch_size * cfg.grad_accum} examples a step, {cfg.batch_size * cfg.grad_accum * world} in all",
              flush=True)
    # the schedule stays unwrapped: it is stepped once per optimizer step, whatever the number of processes
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    model.train()
    tracker = _tracker(cfg) if main else None
    bar = tqdm(total=total, initial=start, desc=f"train {cfg.name}", unit="step", disable=not (progress and main))
    for step in range(start, total):
        for micro in range(cfg.grad_accum):
            # this process's share: batch b of the step goes to process b % world
            rows = _batch_rows(train_rows, cfg, (step * cfg.grad_accum + micro) * world + accelerator.process_index)
            batch = collate(rows).to(device)
            sync = micro == cfg.grad_accum - 1  # average gradients across processes once per step
            with (contextlib.nullcontext() if sync else accelerator.no_sync(model)), accelerator.autocast():
                loss = model(**batch).loss / cfg.grad_accum
                accelerator.backward(loss)
        loss = accelerator.reduce(loss.detach(), "mean").item()
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if main:
            store.add_training_log(cfg.name, step + 1, "train", loss * cfg.grad_accum, schedule.get_last_lr()[0])
            if tracker:
                tracker.log(step + 1, "train", loss * cfg.grad_accum, schedule.get_last_lr()[0])
            bar.update(1)
            bar.set_postfix(loss=f"{loss * cfg.grad_accum:.3f}")
            if on_step:
                on_step(f"train {cfg.name}", step + 1, total)
            if val_rows and ((step + 1) % cfg.eval_every == 0 or step + 1 == total):
                validation = _validation_loss(accelerator.unwrap_model(model), collate, val_rows, cfg, device,
                                              accelerator.autocast())
                store.add_training_log(cfg.name, step + 1, "validation", validation)
                if tracker:
                    tracker.log(step + 1, "validation", validation)
            if (step + 1) % cfg.save_every == 0 and step + 1 < total:
                _save_resume(out, cfg, accelerator.unwrap_model(model), optimizer, schedule, step + 1)
        accelerator.wait_for_everyone()
    bar.close()
    if tracker:
        tracker.finish()
    if main:
        spec = _save_final(cfg, accelerator.unwrap_model(model), processor, out, total, [r[0] for r in train_rows])
    accelerator.wait_for_everyone()
    return spec if main else registry.parse_spec(out / "medvqa.json")


def _tracker(cfg: TrainConfig):
    """MLflow, when asked for, before the first step (an unreachable server stops the training at once)."""
    if cfg.report_to != "mlflow":
        return None
    import dataclasses

    from ..tracking import TrainingTracker

    return TrainingTracker(config.mlflow_uri(), cfg.name, dataclasses.asdict(cfg))


def _examples(cfg: TrainConfig, split: str, limit: int | None) -> list[tuple]:
    if cfg.task == "caption":
        name = "phantom-captions" if cfg.dataset == "phantom" else cfg.dataset
        return [(s.image, s.caption) for s in data.load(name, split=split, limit=limit, seed=cfg.seed)]
    return [(s.image, s.question, s.answer) for s in data.load(cfg.dataset, split=split, limit=limit, seed=cfg.seed)]


def _batch_rows(rows: list, cfg: TrainConfig, batch_index: int) -> list:
    """The same batches in the same order on every run (so a resumed run continues the exact sequence)."""
    per_epoch = math.ceil(len(rows) / cfg.batch_size)
    epoch, offset = divmod(batch_index, per_epoch)
    order = list(range(len(rows)))
    random.Random(cfg.seed * 1000 + epoch).shuffle(order)
    return [rows[i] for i in order[offset * cfg.batch_size : (offset + 1) * cfg.batch_size]]


def _load(cfg: TrainConfig, answers: list[str], device):
    from .. import checkpoint_reader

    family = family_class(cfg.family)
    device = str(device)
    if cfg.method == "qlora":  # the loader's 4-bit settings, so training and serving quantize alike
        ckpt = checkpoint_reader.load(family, cfg.base, dtype="auto", device=device, quantization="4bit",
                                      strict=False, require_quantization=True,
                                      **family.training_load_kwargs(answers, cfg))
    else:  # not strict: a training base may lack the head training adds (a hub MLM checkpoint, say)
        ckpt = checkpoint_reader.load(family, cfg.base, dtype="float32", device=device, strict=False,
                                      **family.training_load_kwargs(answers, cfg))
    model = ckpt.model
    if cfg.init_adapter is None:
        family.init_new_head(model, cfg)
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if cfg.method != "full":
        model = _with_lora(cfg, model)
    if cfg.freeze:
        pattern = re.compile(cfg.freeze)
        for name, param in model.named_parameters():
            if pattern.search(name):
                param.requires_grad_(False)
    return model, ckpt.processor


def _with_lora(cfg: TrainConfig, model):
    from peft import LoraConfig, get_peft_model

    from .. import checkpoint_reader

    if cfg.init_adapter:  # stage 2 continues the stage-1 adapter, trainable
        return checkpoint_reader.attach_adapter(model, cfg.init_adapter, trainable=True)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.targets,
        init_lora_weights="gaussian",
        modules_to_save=cfg.modules_to_save or list(family_class(cfg.family).lora_modules_to_save) or None,
    )
    return get_peft_model(model, lora)


def _accelerator(cfg: TrainConfig):
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState

    from .. import checkpoint_reader

    if config.world_size() == 1:
        # one process trains several models in turn (the demo zoo): each run may choose its own precision, which
        # accelerate's process-wide state would otherwise refuse after the first
        AcceleratorState._reset_state(reset_partial_state=True)
    # find_unused_parameters: a LoRA run may train a head that some batches do not reach (DDP would stop there)
    return Accelerator(mixed_precision=_mixed_precision(cfg), cpu=checkpoint_reader.pick_device() == "cpu",
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def _mixed_precision(cfg: TrainConfig) -> str:
    """accelerate's mixed precision: bf16 or fp16 autocast on a GPU, none on the CPU or with fp32."""
    import torch

    if cfg.precision == "fp32" or not torch.cuda.is_available():
        return "no"
    return "fp16" if cfg.precision == "fp16" else "bf16"


def _validation_loss(model, collate, rows, cfg, device, autocast) -> float:
    import torch

    model.eval()
    losses = []
    with torch.no_grad(), autocast:
        for start in range(0, len(rows), cfg.batch_size):
            losses.append(float(model(**collate(rows[start : start + cfg.batch_size]).to(device)).loss))
    model.train()
    return sum(losses) / len(losses)


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def _save_resume(out: Path, cfg, model, optimizer, schedule, step: int) -> None:
    import torch
    from safetensors.torch import save_file

    tmp = out / (RESUME_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "config": cfg.to_dict()}))
    shutil.rmtree(out / RESUME_DIR, ignore_errors=True)
    os.replace(tmp, out / RESUME_DIR)  # a kill during saving leaves the previous resume point intact


def _resume(out: Path, cfg, model, optimizer, schedule, announce: bool = True) -> int:
    import torch
    from safetensors.torch import load_file

    folder = out / RESUME_DIR
    if not (folder / "state.json").exists():
        return 0
    state = json.loads((folder / "state.json").read_text())
    if state["config"] != cfg.to_dict():
        raise ValueError(f"{folder} belongs to a run with other settings; delete it to start afresh")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in load_file(str(folder / "trainable.safetensors")).items():
            params[name].copy_(tensor)
    saved = torch.load(folder / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    if announce:
        print(f"resuming {cfg.name} from step {state['step']}")
    return int(state["step"])


def _save_final(cfg: TrainConfig, model, processor, out: Path, steps: int, train_images: list) -> ModelSpec:
    model.eval()
    sampled = random.Random(cfg.seed).sample(train_images, min(len(train_images), 5 * ood.MAX_IMAGES))
    pictures = ood.distinct_images(sampled)
    if len(pictures) >= 20:  # what answer cards compare an image with ("unlike its training images")
        ood.fit(pictures, seed=cfg.seed).save(out / ood.PROFILE_FILE)
    model.save_pretrained(out)
    if cfg.method == "full":
        processor.save_pretrained(out)
        base, adapter = ".", None
    else:
        base = os.path.relpath(Path(cfg.base).resolve(), out.resolve()) if Path(cfg.base).exists() else cfg.base
        adapter = "."
    spec = ModelSpec(name=cfg.name, family=cfg.family, base=base, adapter=adapter,
                     quantization="4bit" if cfg.method == "qlora" else "none",
                     description=cfg.description or f"{cfg.family} {cfg.method} on {cfg.dataset} ({cfg.task})",
                     trained_on=(cfg.dataset,), folder=out,
                     extra={"method": cfg.method, "task": cfg.task, "steps": steps, "trained_at": time.time(),
                            "started_from": cfg.base,  # a two-stage full fine-tune starts from its stage-1 folder
                            "hyperparameters": {k: v for k, v in cfg.to_dict().items()
                                                if k not in ("family", "base", "output", "name", "description")}})
    registry.write_spec(out, spec)
    shutil.rmtree(out / RESUME_DIR, ignore_errors=True)
    return spec
