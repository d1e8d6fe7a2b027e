"""A remote, score-only detector: ``--model http://HOST:PORT`` (or ``https://``).

It speaks the ``bench serve`` protocol: ``GET /health`` answers 200 with JSON (the served model, its
``sample_rate`` and ``nb_samp``); ``POST /score`` with an audio file as the body answers
``{"score": float}`` (higher = more bona fide), or, from a decision-only service, ``{"decision":
"bonafide" | "spoof"}``.

* Each row of a batch ``[B, T]`` is one request: the waveform as a lossless 32-bit float WAV at 16 kHz
  (the service resamples to its model's rate), so the service sees exactly the samples scored locally.
* Timeouts (``timeout`` s per request), retries with exponential backoff (``retries`` more tries,
  ``backoff * 2**k`` s, or the service's ``Retry-After``) on connection errors, timeouts and 429/502/503/504;
  a 4xx answer is not retried and its reason is raised. A request budget (``budget`` requests in all,
  tries included) guards a service against a runaway attack. A service that cannot be reached raises
  :class:`RemoteError` naming the URL.
* Bound to what it serves: :func:`served_identity` is what ``/health`` says the service scores with (model,
  checkpoint sha256, the digest of its whole configuration, rate, input length, policy, output). The loader
  records it; after any request that needed a retry, and at most every ``verify_s`` seconds while scoring, the
  detector asks ``/health`` again and raises :class:`ServiceChanged` naming both digests if the service now
  serves something else, so scores of two models are never mixed. A service that cannot be reached after the
  retries raises :class:`ServiceUnavailable`. Both are :class:`models.base.DetectorUnavailable`: ``bench run``
  stops (status ``incomplete``) instead of recording the clips as unusable.
* A score must be a JSON number: a string (``"0.5"``), a boolean, a list, NaN or an infinity is refused.
  The protocol's answer for a detector that gave a non-finite score is HTTP 422: that clip's score becomes NaN
  (``bench run`` records it as the clip's non-finite score, stage ``nonfinite``), not a failure of the service.
* ``output=decision``: the service answers only bona fide / spoof; the score becomes ``+1.0`` (bona fide)
  or ``-1.0`` (spoof). EERs from such scores are those of the service's own operating point; decision
  attacks (``hsja``) decide at ``threshold: 0``.
* Not differentiable: gradient attacks refuse with :class:`NotDifferentiable` (use ``square-linf``,
  ``hsja``, ``universal-filter`` or a transfer attack crafted on a local model).

Options go in the spec's query string: ``http://127.0.0.1:8000?output=decision&timeout=30&retries=3&
budget=100000&concurrency=4&backoff=0.5``; ``--remote-output decision`` on the command line is the same
as ``output=decision``.
"""
from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from models.base import Card, Detector, DetectorUnavailable, register_spec_prefix

log = logging.getLogger(__name__)

PREFIXES = ("http://", "https://")
OUTPUTS = ("score", "decision")
BONAFIDE = {"bonafide", "bona-fide", "bona fide", "bona_fide", "real", "genuine", "human", "authentic"}
SPOOF = {"spoof", "fake", "synthetic", "deepfake", "generated", "ai"}
RETRY_STATUS = {429, 502, 503, 504}
#: options of the spec's query string and their types
OPTIONS: Mapping[str, type] = {"output": str, "timeout": float, "retries": int, "backoff": float,
                               "budget": int, "concurrency": int, "verify_s": float}


class RemoteError(RuntimeError):
    """A remote detector that cannot answer; the message names the URL and what to do."""


class ServiceUnavailable(RemoteError, DetectorUnavailable):
    """The service did not answer (refused, reset, timed out, or busy) through every retry."""


class NonFiniteAnswer(RemoteError):
    """The service answered 422: its detector gave a non-finite score for this input (the clip's, not the
    service's problem)."""


class ServiceChanged(RemoteError, DetectorUnavailable):
    """The service now serves another model or configuration than the one this detector was bound to."""

    retryable = False


#: what ``/health`` says about what a service scores with; a run against it is bound to these
IDENTITY_FIELDS = ("model", "architecture", "checkpoint_sha256", "config_sha256", "sample_rate", "nb_samp", "policy",
                   "output", "threshold")


def served_identity(health: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a ``/health`` answer that determines the scores (see :data:`IDENTITY_FIELDS`)."""
    return {k: health[k] for k in IDENTITY_FIELDS if k in health}


def describe_served(ident: Mapping[str, Any]) -> str:
    """``aasist-l (checkpoint sha256 814331d0..., configuration sha256 1a2b3c4d...)`` for messages."""
    digests = ", ".join(f"{what} sha256 {str(ident[k])[:16]}..." for k, what in
                        (("checkpoint_sha256", "checkpoint"), ("config_sha256", "configuration")) if ident.get(k))
    return f"{ident.get('model', 'an unnamed model')} ({digests or 'no digest reported'})"


class NotDifferentiable(RuntimeError):
    """Raised when something asks a remote detector for gradients."""


def is_remote(spec: str) -> bool:
    return isinstance(spec, str) and spec.lower().startswith(PREFIXES)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``http://h:p/base?output=decision&timeout=5`` -> (``http://h:p/base``, ``{"output": "decision", ...}``)."""
    parts = urllib.parse.urlsplit(spec)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"remote model spec {spec!r}: expected http://HOST:PORT or https://HOST[:PORT][/path]")
    opts: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key not in OPTIONS:
            raise ValueError(f"remote model spec {spec!r}: unknown option {key!r}; known: {', '.join(OPTIONS)}")
        try:
            opts[key] = OPTIONS[key](value)
        except ValueError:
            raise ValueError(f"remote model spec {spec!r}: option {key}={value!r} is not a "
                             f"{OPTIONS[key].__name__}") from None
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return base, opts


def wav_bytes(wav: np.ndarray, sr: int) -> bytes:
    """A mono waveform as a 32-bit float WAV file (lossless for float32 samples)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav, dtype=np.float32), int(sr), format="WAV", subtype="FLOAT")
    return buf.getvalue()


def parse_answer(body: bytes, output: str, url: str) -> float:
    """The score in an answer of the service (``+1``/``-1`` for a decision)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise RemoteError(f"{url} answered something that is not JSON: {body[:200]!r}") from None
    if not isinstance(doc, dict):
        raise RemoteError(f"{url} answered {doc!r}; expected a JSON object like {{\"score\": 1.5}}")
    if output == "score":
        if "score" not in doc:
            hint = " (a decision-only service: use --remote-output decision)" if "decision" in doc else ""
            raise RemoteError(f"{url} answered {doc!r} without a 'score'{hint}")
        raw = doc["score"]
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):   # "0.5", true, [1] are not scores
            raise RemoteError(f"{url} answered a score that is not a JSON number: {raw!r} "
                              f"({type(raw).__name__}); the protocol's score is a number, e.g. {{\"score\": 1.5}}")
        value = float(raw)
        if not np.isfinite(value):
            raise RemoteError(f"{url} answered a non-finite score {value!r}")
        return value
    raw = doc.get("decision", doc.get("label"))
    if isinstance(raw, bool):
        return 1.0 if raw else -1.0
    word = str(raw).strip().lower()
    if word in BONAFIDE:
        return 1.0
    if word in SPOOF:
        return -1.0
    raise RemoteError(f"{url} answered {doc!r}; a decision-only service must answer {{\"decision\": \"bonafide\"}} "
                      "or {\"decision\": \"spoof\"}")


class RemoteDetector(Detector):
    """Scores by HTTP requests to a detector service (see the module docstring). No parameters, no gradients."""

    sample_rate: ClassVar[int] = 16000

    def __init__(self, url: str, output: str = "score", timeout: float = 30.0, retries: int = 3,
                 backoff: float = 0.5, budget: int | None = None, concurrency: int = 4, verify_s: float = 30.0) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"remote detector {url}: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not timeout > 0 or not backoff >= 0:
            raise ValueError(f"remote detector {url}: timeout must be positive and backoff non-negative (seconds), "
                             f"got timeout={timeout!r}, backoff={backoff!r}")
        if int(retries) < 0 or int(concurrency) < 1:
            raise ValueError(f"remote detector {url}: retries must be >= 0 and concurrency >= 1, got "
                             f"retries={retries!r}, concurrency={concurrency!r}")
        if budget is not None and int(budget) < 1:
            raise ValueError(f"remote detector {url}: budget must be a positive number of requests, got {budget!r}")
        self.url, self.output, self.timeout = url, output, float(timeout)
        self.retries, self.backoff, self.concurrency = int(retries), float(backoff), int(concurrency)
        self.budget = None if budget is None else int(budget)
        self.requests = 0           # every HTTP request made, tries included
        self._lock = threading.Lock()
        self.info: dict[str, Any] = {}
        #: the served identity this detector is bound to (set by :func:`load`); None: not checked
        self.expected: dict[str, Any] | None = None
        self.verify_s = float(verify_s)
        self._verified = time.monotonic()
        self._retried = False

    # ---- HTTP -------------------------------------------------------------------------------
    def _take(self) -> None:
        with self._lock:
            if self.budget is not None and self.requests >= self.budget:
                raise RemoteError(f"the request budget of {self.budget} requests to {self.url} is spent; raise it "
                                  "with ?budget=N in the model spec")
            self.requests += 1

    def _request(self, path: str, body: bytes | None = None, count: bool = True) -> bytes:
        url = self.url + path
        last = ""
        for attempt in range(self.retries + 1):
            if count:
                self._take()
            req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                         headers={"Content-Type": "audio/wav"} if body is not None else {})
            wait = self.backoff * 2 ** attempt
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    answer = resp.read()
                if attempt:
                    self._retried = True   # the service may have restarted: /health is asked before scores are used
                return answer
            except urllib.error.HTTPError as e:
                detail = e.read()[:500].decode(errors="replace")
                if e.code == 422:
                    raise NonFiniteAnswer(f"{url}: HTTP 422: {detail}") from None
                if e.code not in RETRY_STATUS:
                    raise RemoteError(f"{url} refused the request: HTTP {e.code}: {detail}") from None
                last = f"HTTP {e.code}: {detail}"
                after = e.headers.get("Retry-After") if e.headers else None
                if after and after.replace(".", "", 1).isdigit():
                    wait = min(float(after), 30.0)
            except (urllib.error.URLError, OSError) as e:   # refused, reset, DNS, timeout
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt < self.retries:
                log.info("%s: %s; retrying in %.2f s", url, last, wait)
                time.sleep(wait)
        raise ServiceUnavailable(f"the detector service at {self.url} cannot be reached ({last}) after "
                                 f"{self.retries + 1} tries; is `bench serve` (or the service) running there?")

    def health(self, count: bool = True) -> dict[str, Any]:
        """``GET /health``: raises :class:`RemoteError` naming the URL when the service is down."""
        try:
            doc = json.loads(self._request("/health", count=count))
        except ValueError:
            raise RemoteError(f"{self.url}/health did not answer JSON; is this a detector service?") from None
        self.info = doc if isinstance(doc, dict) else {}
        nb = self.info.get("nb_samp")
        if nb is not None:
            self.nb_samp = int(nb)   # the official crop is the served model's; the service crops nothing more
        return self.info

    def verify(self) -> None:
        """Asks ``/health`` (not counted in the budget) and raises :class:`ServiceChanged` when the service no
        longer serves :attr:`expected`."""
        if self.expected is None:
            return
        self._retried, self._verified = False, time.monotonic()
        now = served_identity(self.health(count=False))
        if now != self.expected:
            raise ServiceChanged(f"the detector service at {self.url} now serves {describe_served(now)}, not "
                                 f"{describe_served(self.expected)} as when this run bound to it: scores of two models "
                                 "must not be mixed. Serve the original model there again and give the same command, "
                                 "or start a new run (without --out a new folder is derived)")

    def score_one(self, wav: np.ndarray) -> float:
        """One clip's score; NaN when the service says (422) its detector gave a non-finite score."""
        try:
            body = self._request("/score", wav_bytes(wav, self.sample_rate))
        except NonFiniteAnswer as e:
            log.debug("%s", e)
            return float("nan")
        return parse_answer(body, self.output, self.url + "/score")

    # ---- Detector -----------------------------------------------------------------------------
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.requires_grad and torch.is_grad_enabled():
            raise NotDifferentiable(
                f"the remote detector {self.url} answers only scores over HTTP, so it has no input gradient; "
                "gradient attacks (fgsm, pgd-linf, pgd-l2, apgd, cw) cannot run against it. Use a black-box attack "
                "(square-linf, hsja, universal-filter) or a transfer attack crafted on a local model "
                "({attack: pgd-linf, source: aasist-l})")
        if wav.dim() != 2:
            raise ValueError(f"remote detector {self.url}: expected a batch [B, T], got shape {tuple(wav.shape)}")
        rows = wav.detach().float().cpu().numpy()
        if len(rows) <= 1 or self.concurrency <= 1:
            scores = [self.score_one(r) for r in rows]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(rows))) as pool:
                scores = list(pool.map(self.score_one, rows))
        if self._retried or time.monotonic() - self._verified > self.verify_s:
            self.verify()   # before these scores are used
        return torch.tensor(scores, dtype=torch.float32, device=wav.device)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "RemoteDetector":
        return cls(**dict(config))


def probe(spec: str) -> dict[str, Any]:
    """The ``/health`` answer of the service ``spec`` names (:class:`ServiceUnavailable` when it cannot be reached)."""
    base, opts = parse_spec(spec)
    return RemoteDetector(base, **opts).health(count=False)


def wait_until_up(spec: str, max_s: float | None, poll_s: float = 2.0) -> dict[str, Any]:
    """Asks ``/health`` until the service answers (every ``poll_s`` seconds, doubling to 30 s), at most ``max_s``
    seconds (None: without limit); returns its answer, or raises the last :class:`ServiceUnavailable`."""
    deadline = None if max_s is None else time.monotonic() + max_s
    wait, said = poll_s, False
    while True:
        try:
            return probe(spec)
        except ServiceUnavailable:
            if deadline is not None and time.monotonic() + wait > deadline:
                raise
            if not said:
                log.warning("waiting for the detector service at %s to answer (--wait-for-service)", spec)
                said = True
            time.sleep(wait)
            wait = min(30.0, wait * 2)


def load(spec: str, checkpoint=None, device: str = "cpu", config: Mapping[str, Any] | None = None,
         fast_inference: bool = True, label_map: Any = None):
    """``models.load_detector`` for ``http(s)://`` specs: checks the service's health first (the service chooses
    its own inference path and labels: ``fast_inference`` and ``label_map`` do not apply)."""
    from models import LoadedDetector

    if checkpoint is not None:
        raise ValueError(f"model {spec} is a remote service; it loads its own checkpoint (drop --checkpoint, or "
                         "give it to `bench serve`)")
    base, opts = parse_spec(spec)
    opts.update({k: v for k, v in dict(config or {}).items() if v is not None})
    det = RemoteDetector(base, **opts)
    info = det.health()
    det.expected = served_identity(info)
    log.info("remote detector %s: serving %s (%s output)", base, info.get("model", "?"), det.output)
    card = Card(name=spec, architecture="remote", config={"url": base, **opts},
                description=f"remote detector at {base} serving {info.get('model', 'an unnamed model')}",
                input_policy="official", extra={"health": info})
    return LoadedDetector(name=spec, detector=det.eval(), card=card, checkpoint=None,
                          sha256=info.get("checkpoint_sha256"))


for _prefix in PREFIXES:
    register_spec_prefix(_prefix, load, RemoteDetector)
