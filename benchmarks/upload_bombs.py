"""Peak memory and time of refusing the upload bombs, each in a fresh subprocess measured from outside it
(`/usr/bin/time -f %M`): a Deflated DICOM that inflates to 1 GiB, an RLE DICOM of 20 frames of 7000x7000, eight
different 7000x7000 PNGs through the dashboard's decode cache, the window probe of a Deflated DICOM padded to 512 MiB,
a DICOM of a million elements, a gzipped NIfTI that inflates to 1.5 GiB past its header, a NIfTI header declaring
30000^3 voxels, and five slices declaring 2.3 GiB together. Interleaved over several rounds; median and range.

    python benchmarks/upload_bombs.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
from medvqa import images, studies
kind, suffix, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
blobs = [open(p, "rb").read() for p in paths]
began = time.perf_counter()
outcome = "decoded"
cache = images.DecodeCache()
try:
    if kind == "probe":  # what every DICOM upload meets before it is decoded
        outcome = f"probed: {images.window_choices(blobs[0], 'upload.dcm')[0]}, {images.dicom_frames(blobs[0])} frame"
    elif kind == "study":
        studies.read(blobs[0], "upload." + suffix)
    elif kind == "files":
        studies.read_files([(f"{i}.dcm", blob) for i, blob in enumerate(blobs)])
    else:
        for i, blob in enumerate(blobs):
            cache.decode(blob, f"upload{i}." + suffix)
except images.ImageDecodeError as exc:
    outcome = type(exc).__name__
print(json.dumps({"seconds": time.perf_counter() - began, "outcome": outcome, "cache_mb": cache.bytes / 1024**2}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.reliability import bombs

    with tempfile.TemporaryDirectory() as tmp:
        big_slice = dict(Rows=5000, Columns=5000, BitsAllocated=16, BitsStored=16, HighBit=15, NumberOfFrames=10,
                         SeriesInstanceUID="1.2.3")
        cases = {"deflated DICOM, 1 GiB inflated": ("decode", "dcm", [bombs.deflated_dicom()]),
                 "RLE DICOM, 20 x 7000x7000": ("decode", "dcm", [bombs.rle_frames_dicom()]),
                 "8 PNGs of 7000x7000 via the cache": ("decode", "png",
                                                       [bombs.large_png(7000, seed) for seed in range(8)]),
                 "window probe, deflated to 512 MiB": ("probe", "dcm",
                                                       [bombs.deflated_dicom(64, 64, padding=512 * 1024**2)]),
                 "DICOM of 1M elements": ("decode", "dcm", [bombs.many_elements_dicom()]),
                 "NIfTI .gz, 1.5 GiB past its header": ("study", "nii.gz",
                                                        [bombs.nifti_gz((16, 16, 16), inflated_extra=1536 * 2**20)]),
                 "NIfTI header of 30000^3 voxels": ("study", "nii.gz",
                                                    [bombs.nifti_gz((30000,) * 3, "uint8", data=[[[0]]])]),
                 "5 slices declaring 2.3 GiB": ("files", "dcm", [bombs.plain_dicom(**big_slice) for _ in range(5)])}
        files = {}
        for name, (kind, suffix, blobs) in cases.items():
            files[name] = (kind, suffix, [])
            for i, blob in enumerate(blobs):
                path = Path(tmp) / f"{len(files)}-{i}.{suffix}"
                path.write_bytes(blob)
                files[name][2].append(str(path))
        results = {name: [] for name in cases}
        for _ in range(args.rounds):  # interleaved: every case once per round
            for name, (kind, suffix, paths) in files.items():
                done = subprocess.run(["/usr/bin/time", "-f", "peak-kb %M", sys.executable, "-c", CHILD, kind,
                                       suffix, *paths], capture_output=True, text=True, cwd=REPO, check=True)
                peak = int(done.stderr.strip().splitlines()[-1].split()[-1])
                results[name].append({**json.loads(done.stdout.strip().splitlines()[-1]), "peak_rss_mb": peak / 1024})
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {args.rounds} rounds")
    print(f"{'case':38}{'outcome':28}{'seconds (median, range)':28}{'peak RSS MB (median, range)':30}")
    for name, runs in results.items():
        secs, rss = [r["seconds"] for r in runs], [r["peak_rss_mb"] for r in runs]
        print(f"{name:38}{runs[0]['outcome']:28}"
              f"{statistics.median(secs):6.3f} ({min(secs):.3f}-{max(secs):.3f})        "
              f"{statistics.median(rss):6.0f} ({min(rss):.0f}-{max(rss):.0f})"
              + (f"  cache holds {runs[0]['cache_mb']:.0f} MB" if runs[0]["cache_mb"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
