"""Datasets in one schema: the phantom benchmark, VQA-RAD, SLAKE, PathVQA, ROCO captions and the probe."""
from .loaders import (
                      CAPTION_DATASETS,
                      HUB_IDS,
                      VQA_DATASETS,
                      fingerprint,
                      is_prepared,
                      load,
                      load_ids,
                      prepare,
                      text_only_baselines,
)
from .sources import DatasetSourceError

__all__ = ["CAPTION_DATASETS", "HUB_IDS", "VQA_DATASETS", "DatasetSourceError", "fingerprint", "is_prepared", "load",
           "load_ids", "prepare", "text_only_baselines"]
