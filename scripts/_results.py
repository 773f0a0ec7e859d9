"""Shared helpers for scripts that write figures: the machine's name and marked sections of docs/results.md."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """e.g. 'Intel(R) Xeon(R) ... , 2 cores, torch 2.11.0 CPU' or the GPU name."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), cpu)
    except OSError:
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only"
    return f"{cpu}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"


def write_section(name: str, body: str, path: Path = ROOT / "docs" / "results.md") -> None:
    """Replace (or append) the section between <!-- name:start --> and <!-- name:end --> markers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Results\n\nEvery figure here was produced by the command shown next to it.\n"
    block = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
