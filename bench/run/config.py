"""What a run is asked to do (:class:`RunConfig`): every option checked before any work, and the part
of it that determines the scores (the run's identity, see :mod:`bench.run.identity`)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class RunConfig:
    suite: str = "compression"
    models: tuple[str, ...] = ("aasist",)
    checkpoint: str | None = None
    data: str = "demo"
    out: str | None = None
    limit: int | None = None
    seed: int = 0
    device: str = "auto"
    batch_size: int | str = "auto"             # windows per batch, or auto (bench/scoring/engine.py)
    executor: str = "local"
    workers: int | None = None
    policy: str | None = None                  # overrides the suite's input policy
    shard_size: int | None = None              # utterances per unit; None: 32 on a CPU, 256 on a GPU
    n_boot: int = 1000
    address: str | None = None                 # Ray cluster address for --executor ray
    cache_dir: str | None = None               # perturbed-audio cache shared by runs and detectors
    resources: Mapping[str, str] = field(default_factory=dict)  # noise_dir, rir_dir, ...
    prepare_on: str = "auto"                   # device | cpu | auto (device when scoring on a GPU)
    label_map: str | None = None               # names hf: models' classes: "bonafide=LABEL,spoof=LABEL"
    trust_code: bool = False                   # allow `source: package.module:Class` in the suite file
    retry_problems: bool = False               # retry inputs that failed to read/perturb/score finitely before
    precision: str = "fp32"                    # scoring arithmetic: fp32 | bf16 | fp16 (part of the identity)
    compile: str = "off"                       # torch.compile for scoring (checked against eager; not identity)
    max_seconds: float | None = 600.0          # longer audio files are refused before decoding (None: no limit)
    rescore_changed: bool = False              # score files again whose content changed since (else refused)
    wait_for_service: float | None = None      # seconds to wait for a served detector to come back (inf: no limit)
    calibration: tuple[str, ...] = ()          # CAL.json files: results_calibrated.csv (not identity: scores same)
    operating_point: str | None = None         # far=1% | frr=.. | eer | threshold=T | bayes (results.csv columns)
    skip_unavailable: bool = False             # run the families that can run here, name the others (not identity)

    def validate(self) -> None:
        """Every option checked before any work: a bad value is one clear error naming the option."""
        def integer(name: str, v: Any, low: int, high: int | None = None, hint: str = "") -> None:
            if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
                rng = f"{low}..{high}" if high is not None else f">= {low}"
                raise ValueError(f"--{name.replace('_', '-')} must be an integer {rng}, got {v!r}{hint}")

        integer("seed", self.seed, 0, 2**32 - 1, " (seeds are non-negative: they derive per-utterance generators)")
        from bench.scoring.engine import InferenceOptions

        options = InferenceOptions(self.batch_size, self.precision, self.compile)   # each value checked
        if self.device != "auto":   # auto is resolved later; the runner checks again then
            options.check_device(self.device)
        if self.workers is not None:
            integer("workers", self.workers, 0, 1024, " (0 = prepare audio in this process)")
        if self.limit is not None:
            integer("limit", self.limit, 1, hint=" (omit it to use every utterance)")
        if self.shard_size is not None:
            integer("shard_size", self.shard_size, 1)
        integer("n_boot", self.n_boot, 1)

        def seconds(name: str, v: Any, zero_ok: bool) -> None:
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != v
                                  or v < 0 or (v == 0 and not zero_ok)):
                raise ValueError(f"--{name} must be a {'non-negative' if zero_ok else 'positive'} number of "
                                 f"seconds, got {v!r}")

        seconds("max-seconds", self.max_seconds, False)
        seconds("wait-for-service", self.wait_for_service, True)
        if self.prepare_on not in ("auto", "device", "cpu"):
            raise ValueError(f"--prepare-on {self.prepare_on!r}: choose device, cpu or auto")
        if self.executor not in ("local", "ray"):
            raise ValueError(f"--executor must be local or ray, got {self.executor!r}")
        if not self.models or any(not str(m).strip() for m in self.models):
            raise ValueError(f"--model must name at least one model, got {','.join(self.models)!r}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"--model names a model twice: {','.join(self.models)}")
        if self.out is not None and not str(self.out).strip():
            raise ValueError("--out is empty; give a folder (or omit it for runs/<suite>-<models>-<data>-<hash>)")
        if self.out is not None and Path(self.out).exists() and not Path(self.out).is_dir():
            raise ValueError(f"--out {self.out} is a file, not a folder")
        if self.checkpoint and len(self.models) > 1:
            raise ValueError(f"--checkpoint names one file but {len(self.models)} models were given "
                             f"({', '.join(self.models)}); run one model per --checkpoint, then `bench compare` "
                             "the runs")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise ValueError(f"--checkpoint {self.checkpoint} does not exist (or is not a file)")
        if not str(self.data).strip():
            raise ValueError("--data is empty; give demo, a manifest, a corpus spec or a folder")
        if not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", str(self.device)):
            raise ValueError(f"--device must be auto, cpu, cuda, cuda:N, mps or xpu, got {self.device!r}")
        if self.calibration or self.operating_point:   # the files read and matched to the models, before any work
            from bench.run.calibrated import deployment

            deployment(self.operating_point, self.calibration, self.models)
        if self.executor == "local" and str(self.device).startswith("cuda"):
            from foundation.device import resolve_device
            resolve_device(self.device)   # an explicit GPU must exist (auto and cpu need no torch import here)

    def identity(self, suite_sha: str, data_sha: str, models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """What determines the scores (not how fast or where they are computed): the models by content
        (checkpoint sha256; a user class's module file and digest), not by path."""
        ident = {"suite": self.suite, "suite_sha256": suite_sha, "data_sha256": data_sha,
                 "models": models if models is not None else list(self.models),
                 "data": self.data, "limit": self.limit, "seed": self.seed,
                 "policy": self.policy, "resources": dict(self.resources)}
        if self.label_map:   # only when given, so other runs' identities (and folders) stay the same
            ident["label_map"] = self.label_map
        if self.precision != "fp32":   # other arithmetic, other scores; fp32 runs keep their identities
            ident["precision"] = self.precision
        return ident
