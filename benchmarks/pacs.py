"""A 100-slice CT series (512x512, 16-bit) from a real Orthanc on this machine: time to the first slice shown (list
the series, fetch and decode its middle slice, as the dashboard does on opening) and to the whole series (every slice
fetched and decoded), each in a fresh subprocess whose peak memory is measured from outside it (`/usr/bin/time -f
%M`) against a child that only imports the same modules. Interleaved over several rounds; median and range, with
the load average.

    python benchmarks/pacs.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
from medvqa import config, images, pacs
mode, url, user, password, study = sys.argv[1:6]
import dicomweb_client.api, pydicom.pixels, requests  # what any mode imports, so the growth is the series' own
began = time.perf_counter()
if mode != "imports":
    service = pacs.Pacs(config.DicomWeb(url, user, password))
    series = service.open_series(study)
    count = series.count()
    if mode == "first slice":
        series.slice(count // 2, window="automatic")
    else:
        for index in range(count):
            series.slice(index, window="automatic")
print(json.dumps({"seconds": time.perf_counter() - began, "fetched_mb": service.cached_bytes / 2**20
                  if mode != "imports" else 0}))
"""
MODES = ("imports", "first slice", "whole series")


def ct_series(count: int = 100):
    """`count` 512x512 CT slices 1 mm apart: CT_small's header, a smooth body of Hounsfield values."""
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study, series = generate_uid(), generate_uid()
    y, x = np.mgrid[-256:256, -256:256]
    for index in range(count):
        ds = copy.deepcopy(template)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.AccessionNumber = "BENCH-CT-100"
        ds.Rows = ds.Columns = 512
        body = np.where(x**2 + y**2 < (200 - abs(index - count // 2)) ** 2, 40 + (x + index) % 60, -1000)
        ds.PixelData = (body - int(ds.RescaleIntercept)).astype(np.int16).tobytes()
        ds.ImagePositionPatient = [-256.0, -256.0, float(index)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = index + 1
        yield ds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.orthanc import PASSWORD, USER, client, throwaway_orthanc

    with throwaway_orthanc() as server:
        uploader, slices = client(server), list(ct_series())
        for start in range(0, len(slices), 20):
            uploader.store_instances(slices[start:start + 20])
        study = slices[0].StudyInstanceUID
        results = {mode: [] for mode in MODES}
        for _ in range(args.rounds):  # interleaved: every mode once per round
            for mode in MODES:
                done = subprocess.run(["/usr/bin/time", "-f", "peak-kb %M", sys.executable, "-c", CHILD, mode,
                                       server.url, USER, PASSWORD, study], capture_output=True, text=True, cwd=REPO,
                                      check=True)
                peak = int(done.stderr.strip().splitlines()[-1].split()[-1])
                results[mode].append({**json.loads(done.stdout.strip().splitlines()[-1]), "peak_mb": peak / 1024})
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {args.rounds} rounds, Orthanc "
          "1.10 on 127.0.0.1, 100 slices of 512x512x16 bits (51 MB)")
    base = statistics.median(r["peak_mb"] for r in results["imports"])
    print(f"{'':16}{'seconds (median, range)':28}{'peak RSS MB (median, range)':32}{'growth over imports MB':24}")
    for mode in MODES[1:]:
        secs, rss = [r["seconds"] for r in results[mode]], [r["peak_mb"] for r in results[mode]]
        print(f"{mode:16}{statistics.median(secs):6.3f} ({min(secs):.3f}-{max(secs):.3f})        "
              f"{statistics.median(rss):6.0f} ({min(rss):.0f}-{max(rss):.0f})              "
              f"{statistics.median(rss) - base:6.0f}   (fetched {results[mode][0]['fetched_mb']:.1f} MB)")
    print(f"{'imports only':16}{'':28}{base:6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
