"""Peak memory and time of refusing the three upload bombs (each decoded in a fresh subprocess, so its peak RSS is
its own): a Deflated DICOM that inflates to 1 GiB, an RLE DICOM of 20 frames of 7000x7000, and eight different
7000x7000 PNGs through the dashboard's decode cache. Interleaved over several rounds; median and range reported.

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
import json, resource, sys, time
from medvqa import images
blobs = [open(p, "rb").read() for p in sys.argv[2:]]
began = time.perf_counter()
outcome = "decoded"
cache = images.DecodeCache()
for i, blob in enumerate(blobs):
    try:
        cache.decode(blob, f"upload{i}." + sys.argv[1])
    except images.ImageDecodeError as exc:
        outcome = type(exc).__name__
print(json.dumps({"seconds": time.perf_counter() - began, "outcome": outcome,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "cache_mb": cache.bytes / 1024**2}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.reliability import bombs

    with tempfile.TemporaryDirectory() as tmp:
        cases = {"deflated DICOM, 1 GiB inflated": ("dcm", [bombs.deflated_dicom()]),
                 "RLE DICOM, 20 x 7000x7000": ("dcm", [bombs.rle_frames_dicom()]),
                 "8 PNGs of 7000x7000 via the cache": ("png", [bombs.large_png(7000, seed) for seed in range(8)])}
        files = {}
        for name, (suffix, blobs) in cases.items():
            files[name] = (suffix, [])
            for i, blob in enumerate(blobs):
                path = Path(tmp) / f"{len(files)}-{i}.{suffix}"
                path.write_bytes(blob)
                files[name][1].append(str(path))
        results = {name: [] for name in cases}
        for _ in range(args.rounds):  # interleaved: every case once per round
            for name, (suffix, paths) in files.items():
                out = subprocess.run([sys.executable, "-c", CHILD, suffix, *paths], capture_output=True, text=True,
                                     cwd=REPO, check=True).stdout
                results[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {args.rounds} rounds")
    print(f"{'case':36}{'outcome':24}{'seconds (median, range)':28}{'peak RSS MB (median, range)':30}")
    for name, runs in results.items():
        secs, rss = [r["seconds"] for r in runs], [r["peak_rss_mb"] for r in runs]
        print(f"{name:36}{runs[0]['outcome']:24}"
              f"{statistics.median(secs):6.3f} ({min(secs):.3f}-{max(secs):.3f})        "
              f"{statistics.median(rss):6.0f} ({min(rss):.0f}-{max(rss):.0f})"
              + (f"  cache holds {runs[0]['cache_mb']:.0f} MB" if runs[0]["cache_mb"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
