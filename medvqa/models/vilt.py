"""ViLT: classification over a fixed answer vocabulary (ViltForQuestionAnswering)."""
from __future__ import annotations

import math
from collections import Counter

import torch

from .base import InputError, VQAModel

TOP_K = 5
DEFAULT_LABELS = ["yes", "no", "x-ray", "ct", "mri", "pathology", "axial", "coronal", "pa", "chest", "brain",
                  "abdomen", "left", "right", "upper", "lower", "0", "1", "2", "3", "small", "large", "pink", "purple"]


def answer_vocabulary(answers: list[str], max_size: int = 512) -> list[str]:
    """The most frequent training answers (lower-cased). Policy for answers outside it: their targets are all zero
    during training, and at test time such a gold answer can never be predicted (it counts as wrong, never dropped)."""
    return [a for a, _ in Counter(a.strip().lower() for a in answers).most_common(max_size)]


def soft_scores(answer: str, label2id: dict[str, int], num_labels: int) -> torch.Tensor:
    """VQA soft score min(1, count/3) per annotator answer; one annotator answer here, so it is 1/3 -> scaled to 1."""
    target = torch.zeros(num_labels)
    index = label2id.get(answer.strip().lower())
    if index is not None:
        target[index] = min(1.0, 3 / 3)
    return target


class ViltVQA(VQAModel):
    family = "vilt"
    transformers_class = "ViltForQuestionAnswering"
    model_types = ("vilt",)
    padding_side = "right"  # an encoder: padding side does not change its outputs
    max_text_tokens = 40  # ViLT's text position table

    def preprocess(self, images, questions):
        return self.processor(
            images=images, text=questions, padding=True, truncation=True,
            max_length=min(self.max_text_tokens, self.model.config.max_position_embeddings), return_tensors="pt",
        )

    def forward(self, inputs, max_new_tokens):
        return self.model(**inputs).logits

    def postprocess(self, logits, inputs):
        probs = torch.sigmoid(logits.float())  # ViLT is trained with BCE over soft scores: sigmoid, not softmax
        top = probs.topk(min(TOP_K, probs.shape[-1]), dim=-1)
        id2label = self.model.config.id2label
        out = []
        for values, indices in zip(top.values.tolist(), top.indices.tolist()):
            candidates = [(str(id2label[i]), float(v)) for v, i in zip(values, indices)]
            out.append((candidates[0][0], candidates[0][1], candidates))
        return out

    def explanation_batch(self, image, prompt, answer):
        return self.preprocess([image], [prompt])

    def answer_score(self, batch, answer):
        label = self.model.config.label2id.get(answer.strip().lower())
        if label is None:
            raise InputError(f"'{answer}' is not among {self.spec.name}'s answers, so it has no score to explain")
        return self.model(**batch).logits[0, label]

    # --- training: soft multi-hot targets over an answer vocabulary built from the training answers ----------------
    lora_targets = r".*\.(query|value)$"
    lora_modules_to_save = ("classifier",)
    trains_captions = False

    @classmethod
    def training_batch(cls, processor, model_config, images, questions, answers):
        batch = processor(images=images, text=questions, padding=True, truncation=True, max_length=cls.max_text_tokens,
                          return_tensors="pt")
        label2id, n = model_config.label2id, model_config.num_labels
        batch["labels"] = torch.stack([soft_scores(a, label2id, n) for a in answers])
        return batch

    @classmethod
    def training_load_kwargs(cls, answers, cfg):
        vocab = answer_vocabulary(answers, cfg.answer_vocab_size)
        return dict(id2label=dict(enumerate(vocab)), label2id={a: i for i, a in enumerate(vocab)},
                    ignore_mismatched_sizes=True)

    @classmethod
    def init_new_head(cls, model, cfg):
        """Start the new answer head at p = 1/num_labels per answer instead of 0.5 (Lin et al. 2017's prior init).
        From 0.5 the summed BCE begins near 0.69 x num_labels and its clipped gradients spend the first hundreds of
        steps pushing every logit down, while the model answers the label prior for every question."""
        with torch.no_grad():
            model.classifier[-1].bias.fill_(-math.log(model.config.num_labels - 1))

    # --- demo zoo ---------------------------------------------------------------------------------------------------
    demo_adapter = dict(target_modules=["query", "value"], modules_to_save=["classifier"])
    pretrain_reads_text = True

    @staticmethod
    def build_tiny(folder, extra_corpus=None, labels: list[str] | None = None):
        from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessorPil, ViltProcessor

        from . import _tiny
        from . import _tokenizers as toks

        labels = labels or DEFAULT_LABELS
        tok = toks.wordpiece(extra_corpus=extra_corpus)
        size = {"shortest_edge": _tiny.IMAGE, "longest_edge": _tiny.IMAGE}
        proc = ViltProcessor(ViltImageProcessorPil(size=size, size_divisor=_tiny.PATCH, image_mean=_tiny.MEAN,
                                                   image_std=_tiny.STD), tok)
        cfg = ViltConfig(vocab_size=len(tok), max_position_embeddings=40, num_labels=len(labels),
                         id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
                         **_tiny.VISION)
        return _tiny.save(ViltForQuestionAnswering(cfg), proc, folder)

    @classmethod
    def vision_tower(cls, model):
        return model.vilt  # one stream: the whole transformer is the image path

    @classmethod
    def vision_inputs(cls, processor, images, questions):
        # ViLT's tower reads text too: real questions, so [CLS] learns to gather the image beside them
        enc = processor(images=images, text=questions, padding="max_length", truncation=True, max_length=24,
                        return_tensors="pt")
        return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "pixel_mask")}

    @classmethod
    def vision_width(cls, model, tower):
        return model.config.get_text_config().hidden_size

    @classmethod
    def vision_features(cls, output):
        return output.pooler_output[:, None]  # ViLT answers from its pooled [CLS] token, which must gather the image


FAMILY = ViltVQA
