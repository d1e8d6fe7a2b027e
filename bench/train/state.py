"""A training folder's files: the resumable step checkpoint, the weights, metrics.csv, train.json, the curve.

Every file is written to a temporary name and renamed into place, so a kill -9 at any moment leaves either the
previous version or the new one, never half a file. ``state.pt`` holds tensors and plain numbers only and is read
back with ``weights_only=True``; the weights are safetensors in the architecture's own key layout, so
``--model M --checkpoint DIR/best.safetensors`` loads them strictly.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

STATE = "state.pt"
BEST, LAST = "best.safetensors", "last.safetensors"
TRAIN_JSON, METRICS_CSV, PROBLEMS_CSV = "train.json", "metrics.csv", "problems.csv"
METRIC_COLUMNS = ("epoch", "train_loss", "dev_eer", "lr", "seconds", "steps", "examples", "skipped_steps",
                  "adversarial", "best")


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_text(path: Path, text: str) -> None:
    tmp = _tmp(path)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Strict JSON (NaN and inf as null), atomically."""
    from bench.terminal import strict_json

    write_text(path, strict_json(obj) + "\n")


def save_weights(path: Path, module: Any) -> str:
    """The module's state dict as safetensors (contiguous CPU copies); returns the file's sha256."""
    from safetensors.torch import save_file

    from foundation.weights import sha256_file

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    tmp = _tmp(path)
    save_file(state, str(tmp))
    os.replace(tmp, path)
    return sha256_file(path)


def save_state(folder: Path, state: Mapping[str, Any]) -> None:
    """The resumable state (model, optimizer, scheduler, counters, history) as one file, atomically."""
    import torch

    path = Path(folder) / STATE
    tmp = _tmp(path)
    torch.save(dict(state), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def generator_states(module: Any) -> dict[str, Any]:
    """The states of the torch generators a model keeps on its modules (a sinc front end's frequency masks),
    by module path: part of a resumable state, so a resumed training draws what an uninterrupted one would."""
    import torch

    out = {}
    for path, m in module.named_modules():
        for attr, value in vars(m).items():
            if isinstance(value, torch.Generator):
                out[f"{path}:{attr}"] = value.get_state()
    return out


def set_generator_states(module: Any, states: Mapping[str, Any]) -> None:
    mods = dict(module.named_modules())
    for key, state in states.items():
        path, _, attr = key.rpartition(":")
        getattr(mods[path], attr).set_state(state)


def snapshot(model: Any, **stateful: Any) -> dict[str, Any]:
    """What a step checkpoint holds of the model and of each optimiser or scheduler (by name), generators included."""
    return {"model": model.state_dict(), "generators": generator_states(model),
            **{name: obj.state_dict() for name, obj in stateful.items()}}


def restore(saved: dict[str, Any], model: Any, **stateful: Any) -> dict[str, Any]:
    """:func:`snapshot`'s inverse on a loaded state; returns what is left (the loop's counters)."""
    saved = dict(saved)
    model.load_state_dict(saved.pop("model"))
    set_generator_states(model, saved.pop("generators", {}))
    for name, obj in stateful.items():
        obj.load_state_dict(saved.pop(name))
    return saved


def load_state(folder: Path) -> dict[str, Any] | None:
    """The last step checkpoint, or None when the folder has none. Tensors and plain data only."""
    import torch

    path = Path(folder) / STATE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised naming the file and what to do
        raise ValueError(f"cannot read the step checkpoint {path} ({type(e).__name__}: {e}); delete it to "
                         "start this training again from the beginning") from e


def write_metrics(folder: Path, history: list[Mapping[str, Any]]) -> None:
    import pandas as pd

    df = pd.DataFrame(list(history), columns=list(METRIC_COLUMNS))
    write_text(Path(folder) / METRICS_CSV, df.to_csv(index=False))


def write_problems(folder: Path, problems: list[tuple[str, str, str]]) -> None:
    import pandas as pd

    df = pd.DataFrame(problems, columns=["utt_id", "path", "reason"]).drop_duplicates()
    write_text(Path(folder) / PROBLEMS_CSV, df.to_csv(index=False))


def plot_curves(folder: Path, history: list[Mapping[str, Any]]) -> None:
    """training_curve.png / .svg: training loss and dev EER per epoch."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.4), constrained_layout=True)
    ax.plot(epochs, [r["train_loss"] for r in history], "o-", color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (weighted CE)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(epochs, [100 * r["dev_eer"] if r["dev_eer"] is not None else math.nan for r in history], "s--",
             color="tab:red", label="dev EER")
    ax2.set_ylabel("dev EER (%)", color="tab:red")
    ax.set_xticks(epochs)
    ax.set_title("training curve")
    for ext in ("png", "svg"):
        tmp = _tmp(Path(folder) / f"training_curve.{ext}")
        fig.savefig(tmp, format=ext, dpi=150)
        os.replace(tmp, Path(folder) / f"training_curve.{ext}")
    plt.close(fig)
