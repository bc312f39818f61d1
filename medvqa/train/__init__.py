"""Fine-tuning: one loop for every family (full, LoRA, QLoRA; VQA or captions; two-stage via init_adapter)."""
from .config import TrainConfig


def run(cfg: TrainConfig, store=None, progress: bool = True, on_step=None):
    from .loop import run as _run

    return _run(cfg, store=store, progress=progress, on_step=on_step)


__all__ = ["TrainConfig", "run"]
