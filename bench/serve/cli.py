"""`bench serve`: its options and handler (the service itself is bench/serve/app.py)."""
from __future__ import annotations

import argparse

from bench.serve.app import DEFAULT_MAX_BYTES, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_QUEUE


def add_parser(sub, label_map_help: str) -> None:

    s = sub.add_parser("serve", help="serve one detector over HTTP (GET /health, POST /score)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Serves one detector over HTTP until interrupted (starlette + uvicorn).\n"
                       "  GET  /health  -> 200 {\"status\": \"ok\", \"model\": ..., \"sample_rate\": ..., ...}\n"
                       "  POST /score   body: an audio file (wav, flac, ogg, mp3, ... any rate)\n"
                       "                -> 200 {\"score\": float} (higher = more bona fide),\n"
                       "                   or {\"decision\": \"bonafide\"|\"spoof\"} with --output decision;\n"
                       "                400 unreadable audio (with the reason), 413 body over --max-bytes,\n"
                       "                503 (Retry-After) when --max-concurrent are scoring and --max-queue wait.",
                       epilog="example:\n  bench serve --model aasist-l --port 8000\n"
                       "  curl --data-binary @clip.flac http://127.0.0.1:8000/score\n"
                       "  bench run --suite blackbox --model http://127.0.0.1:8000 --limit 8")
    s.add_argument("--model", default="aasist", help="card name (see `bench models`), package.module:Class or "
                   "hf:ID_OR_FOLDER[@REVISION]")
    s.add_argument("--checkpoint", help="checkpoint file (default: the card's)")
    s.add_argument("--label-map", metavar="bonafide=LABEL,spoof=LABEL", help=label_map_help)
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only; "
                   "anything else exposes the detector and is logged as a warning)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s.add_argument("--policy", help="input policy (default: the card's, official)")
    s.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    s.add_argument("--batch-size", type=int, default=8, help="windows per forward under a full policy")
    s.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"largest request body in bytes, else 413 (default {DEFAULT_MAX_BYTES}, 32 MiB)")
    s.add_argument("--max-concurrent", type=int, default=DEFAULT_MAX_CONCURRENT,
                   help=f"requests scored at once (default {DEFAULT_MAX_CONCURRENT})")
    s.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                   help=f"requests waiting beyond those, else 503 (default {DEFAULT_MAX_QUEUE})")
    s.add_argument("--output", default="score", choices=["score", "decision"],
                   help="answer the score (default) or only the decision (a decision-only service)")
    s.add_argument("--threshold", type=float, default=0.0,
                   help="with --output decision: bona fide iff score >= this (default 0)")
    s.set_defaults(func=cmd_serve)


def cmd_serve(a: argparse.Namespace) -> int:
    from models.hf import check_label_map as _check_label_map
    from bench.serve.app import serve

    _check_label_map(a.label_map, [a.model])
    serve(a.model, checkpoint=a.checkpoint, host=a.host, port=a.port, policy=a.policy, device=a.device,
          label_map=a.label_map,
          log_level="debug" if a.verbose >= 2 else "info", max_bytes=a.max_bytes, max_concurrent=a.max_concurrent,
          max_queue=a.max_queue, output=a.output, threshold=a.threshold, batch_size=a.batch_size)
    return 0
