"""Tokenizers trained locally with `tokenizers` (no hub): WordPiece for the BERT-style families, byte-level BPE for
the causal LMs. The corpus is the vocabulary of radiology and pathology questions and answers."""
from __future__ import annotations

import itertools

MODALITIES = ["x-ray", "ct", "mri", "pathology", "ultrasound", "radiograph", "he", "stain"]
ORGANS = ["chest", "lung", "lungs", "brain", "abdomen", "liver", "heart", "kidney", "tissue", "head", "spine", "colon"]
PLANES = ["axial", "coronal", "sagittal", "pa", "ap", "transverse"]
FINDINGS = ["mass", "nodule", "lesion", "tumor", "effusion", "fracture", "cyst", "pneumothorax", "abnormality",
            "opacity", "infarct", "haemorrhage", "edema", "nuclei", "cells", "gland"]
POSITIONS = ["left", "right", "upper", "lower", "middle", "lobe", "quadrant", "both", "center", "side"]
ANSWERS = ["yes", "no", "zero", "one", "two", "three", "0", "1", "2", "3", "small", "large", "pink", "purple",
           "blue", "normal", "abnormal", "none"]
TEMPLATES = [
    "is there a {f} in the {o}?", "what modality is this?", "what is the imaging modality?",
    "which plane is this image?", "in what plane was this image taken?", "what organ is shown?",
    "which organ is imaged?", "is the {f} on the {p} side?", "where is the {f}?", "how many {f} are there?",
    "how many {f}s are seen?", "is the {f} small or large?", "what colour is the stain?", "what color is the tissue?",
    "is this a {m} image?", "is this image abnormal?", "does the {o} look normal?",
    "what abnormality is seen in the {o}?", "the {m} shows a {f} in the {p} {o}.",
    "you are an expert radiologist evaluating the case, answer the question succinctly based on the medical image.",
    "question: answer: user: assistant:",
]


def corpus(extra: list[str] | None = None) -> list[str]:
    lines = list(extra or [])
    for template in TEMPLATES:
        for f, o, p, m in itertools.islice(itertools.product(FINDINGS, ORGANS, POSITIONS, MODALITIES), 0, 400, 7):
            lines.append(template.format(f=f, o=o, p=p, m=m))
    lines += [" ".join(ANSWERS), " ".join(MODALITIES + ORGANS + PLANES + FINDINGS + POSITIONS)]
    return lines


def wordpiece(extra_special: list[str] = (), vocab_size: int = 600, extra_corpus: list[str] | None = None):
    """A BERT-style uncased WordPiece tokenizer (ViLT, BLIP)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra_special]
    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.train_from_iterator(
        corpus(extra_corpus), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    )
    vocab = dict(sorted(tk.get_vocab().items(), key=lambda kv: kv[1]))
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def byte_bpe(extra_special: list[str] = (), vocab_size: int = 700, extra_corpus: list[str] | None = None):
    """A byte-level BPE tokenizer with BOS prepended (the OPT / Mistral / Llama-style decoders)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(corpus(extra_corpus), trainer)
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", tk.token_to_id("<s>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>")
    if extra_special:
        tok.add_special_tokens({"additional_special_tokens": list(extra_special)})
    return tok
