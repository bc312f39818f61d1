"""A vote on an uploaded DICOM keeps neither its pixels nor its patient tags, unless the rater saves the case."""
import sqlite3
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from medvqa import images
from medvqa.store import Store
from medvqa.ui.image_input import Picked
from medvqa.ui.judgment import Battle, record_vote


def test_a_dicom_vote_stores_a_hash_and_no_patient_data(zoo, tmp_path, monkeypatch, private_store):
    monkeypatch.setenv("MEDVQA_HOME", str(tmp_path))
    path = get_testdata_file("CT_small.dcm")
    header = pydicom.dcmread(path)
    patient = [str(header.PatientName), str(header.PatientID)]
    assert all(patient)
    decoded = images.decode(Path(path).read_bytes(), "CT_small.dcm")
    picked = Picked(decoded.image, "CT_small.dcm", dataset="upload", modality=decoded.metadata["modality"])
    battle = Battle(("vilt-tiny", "llava-tiny"), "is there a mass?", images.pixel_hash(decoded.image), picked.dataset,
                    picked.modality)
    record_vote(battle, "tie", "dr-a", picked, save_case=False, store=Store(private_store))
    dump = "\n".join(sqlite3.connect(private_store).iterdump())
    assert battle.image_hash in dump and "CT" in dump
    assert not any(p in dump for p in patient)
    vote = Store(private_store).votes().iloc[0]
    assert all(len(str(value)) <= 200 for value in vote.values)  # a hash, names and a question: no pixel payload
    assert not (tmp_path / "saved_cases").exists()  # nothing written to disk without the rater's say-so
    record_vote(battle, "tie", "dr-a", picked, save_case=True, store=Store(private_store))
    saved = Store(private_store).votes().saved_case.dropna().tolist()
    assert len(saved) == 1 and Path(saved[0]).suffix == ".png"
    png = Path(saved[0]).read_bytes()
    assert png.startswith(b"\x89PNG") and not any(p.encode() in png for p in patient)
