"""Shared test settings and fixtures."""

from __future__ import annotations

import os

import pytest
import torch

# Tiny tensors on 2 cores: one intra-op thread is far faster than two threads fighting (and than oversubscription
# when several test processes run). Set once for the whole suite.
torch.set_num_threads(1)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Configs write to relative paths (runs/..., data/...): keep every test's output in its own tmp folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> "os.PathLike":
    """A small demo corpus (both layouts), generated once per test session."""
    from tts_lab.data.demo import generate_demo_corpus

    root = tmp_path_factory.mktemp("demo")
    generate_demo_corpus(root, seed=0, n_lj=48, n_arctic=24)
    return root


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> "os.PathLike":
    """An empty feature cache, also the default one (TTS_LAB_CACHE) for code under test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("TTS_LAB_CACHE", str(path))
    return path
