"""ViLT: classification over a fixed answer vocabulary (ViltForQuestionAnswering)."""
from __future__ import annotations

import torch

from .base import VQAModel

TOP_K = 5


class ViltVQA(VQAModel):
    family = "vilt"
    transformers_class = "ViltForQuestionAnswering"
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
