"""What every tts_lab checkpoint records besides weights, and the check made when one is loaded.

A model must read features exactly as it was trained, and decode with the same symbol set: both are stored under
``checkpoint["tts_lab"]`` and compared on load, with an error that says what differs.
"""

from __future__ import annotations

from typing import Any

from tts_lab.audio.features import FeatureConfig

KEY = "tts_lab"


class CheckpointMismatch(ValueError):
    """A checkpoint of another task, feature config or symbol set."""


def stamp(checkpoint: dict, task: str, features: FeatureConfig, **extra: Any) -> None:
    checkpoint[KEY] = {"task": task, "features": features.to_dict(), **extra}


def check(checkpoint: dict, task: str, features: FeatureConfig, source: str = "checkpoint", **extra: Any) -> dict:
    """Raise CheckpointMismatch unless ``checkpoint`` was written by ``task`` with the same features and extras."""
    meta = checkpoint.get(KEY)
    if meta is None:
        raise CheckpointMismatch(f"{source} was not written by tts_lab (no '{KEY}' entry)")
    if meta["task"] != task:
        raise CheckpointMismatch(f"{source} is a '{meta['task']}' checkpoint, expected '{task}'")
    if meta["features"] != features.to_dict():
        diff = {k: (v, features.to_dict().get(k)) for k, v in meta["features"].items() if features.to_dict().get(k) != v}
        raise CheckpointMismatch(f"{source} was trained with other features (checkpoint vs now): {diff}")
    for key, value in extra.items():
        if meta.get(key) != value:
            raise CheckpointMismatch(f"{source}: {key} differs (checkpoint {meta.get(key)!r} vs now {value!r})")
    return meta


def require_fit(own: dict, theirs: dict, problem: str) -> None:
    """Raise CheckpointMismatch (``problem``, then what differs) unless state dict ``theirs`` has exactly the keys and
    shapes of ``own``."""
    missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    shapes = [f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in theirs and theirs[k].shape != own[k].shape]
    if not (missing or unexpected or shapes):
        return

    def show(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f" ... ({len(items)} in all)" if len(items) > 3 else "")

    raise CheckpointMismatch(
        problem
        + (f"; missing: {show(missing)}" if missing else "")
        + (f"; unexpected: {show(unexpected)}" if unexpected else "")
        + (f"; shapes (checkpoint vs model): {show(shapes)}" if shapes else "")
    )
