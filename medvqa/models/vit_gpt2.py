"""ViT-GPT2: the seed Kalbe VQA app's encoder-decoder baseline, as transformers' VisionEncoderDecoderModel (a ViT image
encoder, a GPT-2 decoder cross-attending to it), with the question as the decoder's prefix: "question: {q} answer:".

Hub checkpoints of this kind (e.g. nlpconnect/vit-gpt2-image-captioning) ship an image processor and a tokenizer but
no processor file: both are read from the folder and paired in a TrOCRProcessor, the transformers processor made for
this architecture. GPT-2 numbers positions from the left whatever the attention mask says, so a left-padded prefix
would change the answer: generation runs once per prefix length, which keeps batched answers equal to single ones.
"""
from __future__ import annotations

import torch

from .base import GenerativeVQA


def prompt(question: str) -> str:
    return f"question: {question} answer:"


class VitGpt2VQA(GenerativeVQA):
    family = "vit-gpt2"
    transformers_class = "VisionEncoderDecoderModel"
    model_types = ("vision-encoder-decoder",)
    default_max_new_tokens = 10
    # GPT-2's self- and cross-attention and MLP input projections (Conv1D layers; peft handles their layout)
    lora_targets = r".*decoder\.transformer\.h\.\d+\.(attn\.c_attn|crossattention\.(q_attn|c_attn)|mlp\.c_fc)$"

    @classmethod
    def load_processor(cls, source, **kwargs):
        from transformers import AutoImageProcessor, AutoTokenizer, TrOCRProcessor

        return TrOCRProcessor(image_processor=AutoImageProcessor.from_pretrained(source, **kwargs),
                              tokenizer=AutoTokenizer.from_pretrained(source, **kwargs))

    def preprocess(self, images, questions):
        from transformers import BatchFeature

        start = self.model.config.decoder_start_token_id
        prompts = self.tokenizer([prompt(q) for q in questions], add_special_tokens=False)["input_ids"]
        rows = [[start, *ids] for ids in prompts]
        width = max(map(len, rows))
        pad = self._generation_config().pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        pixels = self.processor.image_processor(images, return_tensors="pt")["pixel_values"]
        return BatchFeature({"pixel_values": pixels, "decoder_input_ids": ids, "decoder_attention_mask": mask})

    def forward(self, inputs, max_new_tokens):
        """One `generate` per prefix length (no padding inside a group); outputs keyed by row index."""
        lengths = inputs["decoder_attention_mask"].sum(1)
        groups = []
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().flatten()
            ids = inputs["decoder_input_ids"][rows, -length:]
            out = self.model.generate(pixel_values=inputs["pixel_values"][rows], decoder_input_ids=ids,
                                      decoder_attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                      do_sample=False, num_beams=1, output_logits=True, return_dict_in_generate=True)
            groups.append((rows.tolist(), out))
        return groups

    def postprocess(self, groups, inputs):
        results = [None] * len(inputs["decoder_input_ids"])
        for rows, out in groups:
            for row, decoded in zip(rows, super().postprocess(out, None)):
                results[row] = decoded
        return results

    # --- training: decoder input [start] prompt answer, labels the next tokens with the prompt's masked ------------
    @classmethod
    def training_batch(cls, processor, model_config, images, questions, answers):
        from transformers import BatchFeature

        tok = processor.tokenizer
        start, end, pad = model_config.decoder_start_token_id, tok.eos_token_id, tok.pad_token_id or 0
        prompts = [prompt(q) for q in questions]
        # the prompt ends in ":" and the answer starts with a space: a token boundary, so the prompt's own length holds
        prompt_lengths = tok(prompts, add_special_tokens=False, return_length=True)["length"]
        full = tok([f"{p} {a}" for p, a in zip(prompts, answers)], add_special_tokens=False)["input_ids"]
        width = max(len(ids) for ids in full) + 1
        decoder_ids = torch.full((len(full), width), pad)
        mask = torch.zeros((len(full), width), dtype=torch.long)
        labels = torch.full((len(full), width), -100)
        for i, (ids, prompt_length) in enumerate(zip(full, prompt_lengths)):
            sequence = torch.tensor([start, *ids, end])
            decoder_ids[i, : len(ids) + 1] = sequence[:-1]
            mask[i, : len(ids) + 1] = 1
            labels[i, prompt_length : len(ids) + 1] = sequence[prompt_length + 1 :]  # the answer and the end token
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        return BatchFeature({"pixel_values": pixels, "decoder_input_ids": decoder_ids,
                             "decoder_attention_mask": mask, "labels": labels})

    # --- demo zoo ---------------------------------------------------------------------------------------------------
    demo_adapter = dict(target_modules=r".*decoder\.transformer\.h\.\d+\.attn\.c_attn$", fan_in_fan_out=True)

    @staticmethod
    def build_tiny(folder, extra_corpus=None):
        from transformers import (
            GPT2Config,
            TrOCRProcessor,
            VisionEncoderDecoderConfig,
            VisionEncoderDecoderModel,
            ViTConfig,
            ViTImageProcessorPil,
        )

        from . import _tiny
        from . import _tokenizers as toks

        tok = toks.byte_bpe(extra_corpus=extra_corpus)
        image_processor = ViTImageProcessorPil(size={"height": _tiny.IMAGE, "width": _tiny.IMAGE},
                                               image_mean=_tiny.MEAN, image_std=_tiny.STD)
        encoder = ViTConfig(image_size=_tiny.IMAGE, patch_size=_tiny.PATCH, **_tiny.HIDDEN)
        decoder = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4, n_inner=128, n_positions=128,
                             add_cross_attention=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
        config = VisionEncoderDecoderConfig(encoder=encoder.to_dict(), decoder=decoder.to_dict())
        config.decoder_start_token_id, config.pad_token_id = tok.bos_token_id, tok.pad_token_id
        config.eos_token_id = tok.eos_token_id
        model = VisionEncoderDecoderModel(config)
        _tiny.set_generation_ids(model, tok, tok.eos_token_id)
        model.generation_config.decoder_start_token_id = tok.bos_token_id
        return _tiny.save(model, TrOCRProcessor(image_processor=image_processor, tokenizer=tok), folder)

    @classmethod
    def vision_tower(cls, model):
        return model.encoder


FAMILY = VitGpt2VQA
