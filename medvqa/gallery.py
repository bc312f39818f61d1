"""Real medical images that ship inside PyPI packages, available offline to the dashboard and the tests."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GalleryImage:
    key: str
    title: str
    package: str
    file: str
    licence: str
    source: str

    def path(self) -> str | None:
        if self.package == "pydicom":
            from pydicom.data import get_testdata_file

            return get_testdata_file(self.file)
        return None

    def load(self, **options):
        from .images import load_path

        path = self.path()
        if path is None:
            raise FileNotFoundError(f"{self.file} is not installed (package {self.package})")
        return load_path(path, **options)


_NEMA = "NEMA WG04 sample images, downsized and anonymised by pydicom"
GALLERY = [
    GalleryImage(
        "ct-thorax", "CT, axial thorax at a vertebra (128x128)", "pydicom", "CT_small.dcm", "MIT (pydicom)", _NEMA
    ),
    GalleryImage("ct-head", "CT, axial head (512x512, JPEG 2000)", "pydicom", "693_J2KI.dcm", "MIT (pydicom)", _NEMA),
    GalleryImage("mr-head", "MR, head slice (64x64)", "pydicom", "MR_small.dcm", "MIT (pydicom)", _NEMA),
    GalleryImage("us-rgb", "Ultrasound, colour (60x80)", "pydicom", "ExplVR_BigEnd.dcm", "MIT (pydicom)", _NEMA),
]


def available() -> list[GalleryImage]:
    return [g for g in GALLERY if g.path()]


def get(key: str) -> GalleryImage:
    for g in GALLERY:
        if g.key == key:
            return g
    raise KeyError(f"no gallery image '{key}'; available: {', '.join(g.key for g in GALLERY)}")
