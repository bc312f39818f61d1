"""Is this image like the ones the model was trained on? An out-of-distribution flag for answer cards.

`medvqa train` writes `image_profile.json` beside the weights: the mean and a shrunk covariance of a small,
model-independent descriptor of its training images (intensity layout on a 4x4 grid, contrast, histogram, colour,
edges, aspect), and a threshold on the Mahalanobis distance set from training images held out of the fit. An image
beyond the threshold is flagged: a real DICOM shown to a phantom-trained model answered "yes" with confidence 0.99, and
the card now says the image is unlike its training data. Models without a profile (hub checkpoints, the untrained
zoo) get no flag, never a false reassurance. No torch; a profile is ~50 kB of JSON.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

PROFILE_FILE = "image_profile.json"
FEATURES = "medvqa.ood descriptor v1"
MAX_IMAGES = 600  # training images profiled: enough for a 49-dimensional covariance with shrinkage
HELD_OUT = 0.2  # share of them kept out of the fit to set the threshold
QUANTILE = 0.99
MARGIN = 1.2  # the threshold sits this far beyond the held-out 99th percentile


def descriptor(image: Image.Image) -> np.ndarray:
    """49 numbers describing an image's appearance, whatever its size."""
    rgb = np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    grey = rgb.mean(-1)
    blocks = grey.reshape(4, 8, 4, 8).transpose(0, 2, 1, 3).reshape(16, 64)
    histogram = np.histogram(grey, bins=12, range=(0.0, 1.0))[0] / grey.size
    colour = [float((rgb.max(-1) - rgb.min(-1)).mean()), float((rgb[..., 0] - rgb[..., 1]).mean()),
              float((rgb[..., 2] - rgb[..., 1]).mean())]
    edges = float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())
    aspect = float(np.log(image.width / max(1, image.height)))
    return np.concatenate([blocks.mean(1), blocks.std(1), histogram, colour, [edges, aspect]]).astype(np.float64)


@dataclass(frozen=True)
class ImageProfile:
    mean: np.ndarray
    precision: np.ndarray  # inverse of the shrunk covariance
    threshold: float
    images: int

    def distance(self, image: Image.Image) -> float:
        delta = descriptor(image) - self.mean
        return float(np.sqrt(max(0.0, delta @ self.precision @ delta)))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"features": FEATURES, "images": self.images, "threshold": self.threshold,
                                    "mean": self.mean.tolist(), "precision": self.precision.tolist()}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ImageProfile:
        raw = json.loads(Path(path).read_text())
        if raw.get("features") != FEATURES:
            raise ValueError(f"{path}: a profile of other features ({raw.get('features')})")
        return cls(np.asarray(raw["mean"]), np.asarray(raw["precision"]), float(raw["threshold"]), int(raw["images"]))


def fit(images: list[Image.Image], seed: int = 0) -> ImageProfile:
    """A profile of (at most MAX_IMAGES of) `images`; the threshold comes from the ones held out of the fit."""
    if len(images) < 20:
        raise ValueError(f"an image profile needs 20 images or more; got {len(images)}")
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(images))[:MAX_IMAGES]
    features = np.stack([descriptor(images[i]) for i in chosen])
    cut = max(10, int(len(features) * HELD_OUT))
    held, fitted = features[:cut], features[cut:]
    mean = fitted.mean(0)
    covariance = np.cov(fitted, rowvar=False)
    dims = covariance.shape[0]
    # shrink towards a scaled identity (Ledoit-Wolf style, fixed weight): a few hundred images, 49 dimensions
    shrunk = 0.8 * covariance + 0.2 * (np.trace(covariance) / dims) * np.eye(dims) + 1e-6 * np.eye(dims)
    precision = np.linalg.inv(shrunk)
    delta = held - mean
    distances = np.sqrt(np.einsum("ij,jk,ik->i", delta, precision, delta).clip(min=0))
    return ImageProfile(mean, precision, float(np.quantile(distances, QUANTILE) * MARGIN), len(features))


def distinct_images(images) -> list[Image.Image]:
    """Each picture once (training rows repeat an image for each of its questions)."""
    import hashlib

    return list({hashlib.blake2b(image.tobytes(), digest_size=16).digest(): image for image in images}.values())


@lru_cache(maxsize=64)
def _load(path: str, modified: float) -> ImageProfile | None:
    try:
        return ImageProfile.load(path)
    except (OSError, ValueError, KeyError) as exc:  # a damaged profile costs the flag, never the answer
        import logging

        logging.getLogger(__name__).warning("ignoring %s: %s", path, exc)
        return None


def profile_of(folder: str | Path | None) -> ImageProfile | None:
    """The profile written beside a checkpoint, or None."""
    if folder is None:
        return None
    path = Path(folder) / PROFILE_FILE
    try:
        return _load(str(path), os.path.getmtime(path))
    except OSError:
        return None


def unusual_image_warning(name: str, image: Image.Image) -> str | None:
    """A sentence for the answer card when `image` is unlike model `name`'s training images, else None."""
    from . import registry
    from .datatypes import MedVQAError

    try:
        spec = registry.get_spec(name)
    except MedVQAError:
        return None
    profile = profile_of(spec.folder)
    if profile is None:
        return None
    distance = profile.distance(image)
    if distance <= profile.threshold:
        return None
    trained_on = ", ".join(spec.trained_on) or "its training data"
    return (f"This image is unlike the images {name} was trained on ({trained_on}): distance {distance:.0f}, beyond "
            f"the threshold of {profile.threshold:.0f} (1.2x the 99th percentile of held-out training images). Treat "
            "its answer with caution.")
