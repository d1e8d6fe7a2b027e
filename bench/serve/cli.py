"""`bench serve`: its options and handler (the service itself is bench/serve/app.py)."""
from __future__ import annotations

import argparse

from bench.terminal import finite_float

from bench.serve import app as A
from bench.serve.protocol import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES

DEFAULT_MAX_BYTES, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_QUEUE = A.DEFAULT_MAX_BYTES, A.DEFAULT_MAX_CONCURRENT, \
    A.DEFAULT_MAX_QUEUE


def add_parser(sub, label_map_help: str) -> None:

    s = sub.add_parser("serve", help="serve one detector over HTTP (GET /health, POST /score, /stream, /metrics)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Serves one detector over HTTP until interrupted (starlette + uvicorn).\n"
                       "  GET  /health  -> 200 {\"status\": \"ok\", \"model\": ..., \"sample_rate\": ..., ...}\n"
                       "  POST /score   body: an audio file (wav, flac, ogg, mp3, ... any rate)\n"
                       "                -> 200 {\"score\": float} (higher = more bona fide),\n"
                       "                   or {\"decision\": \"bonafide\"|\"spoof\"} with --output decision\n"
                       "  WebSocket /stream?rate=16000&format=f32le&hop=0.5: send binary chunks of samples\n"
                       "                (f32le or s16le) and the text 'end'; one JSON message per window\n"
                       "                {\"start_s\", \"end_s\", \"score\"}, then {\"done\": true}\n"
                       "  GET  /metrics -> Prometheus text (requests, latency, queue, streams, model digest)\n"
                       "Every other answer is JSON {\"error\": reason}: 400 unreadable audio, 404/405, 408 too slow\n"
                       "(--header-timeout, --read-timeout), 413 body over --max-bytes, 422 non-finite score,\n"
                       "431 head over --max-header-bytes, 503 (Retry-After) when --max-concurrent are scoring and\n"
                       "--max-queue wait (decided before the body is read) or bodies exceed --max-body-memory.",
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
    s.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    s.add_argument("--batch-wait-ms", type=finite_float, default=A.DEFAULT_BATCH_WAIT_MS,
                   help="dynamic batching: how long the first waiting window waits for others (from concurrent "
                   f"requests and streams) to share its forward pass (default {A.DEFAULT_BATCH_WAIT_MS:g}); 0 turns "
                   "it off (each request scored alone, --max-concurrent at a time)")
    s.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"largest request body in bytes, else 413 (default {DEFAULT_MAX_BYTES}, 32 MiB)")
    s.add_argument("--max-body-memory", type=int, help="bytes of request bodies in flight at once, else 503 "
                   "(default 4 x --max-bytes)")
    s.add_argument("--max-concurrent", type=int, default=DEFAULT_MAX_CONCURRENT,
                   help=f"requests decoded (and, without dynamic batching, scored) at once (default "
                   f"{DEFAULT_MAX_CONCURRENT})")
    s.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                   help=f"requests waiting beyond those, else 503 before the body is read (default "
                   f"{DEFAULT_MAX_QUEUE})")
    s.add_argument("--read-timeout", type=finite_float, default=A.DEFAULT_READ_TIMEOUT,
                   help=f"seconds for a whole request body, else 408 (default {A.DEFAULT_READ_TIMEOUT:g})")
    s.add_argument("--header-timeout", type=finite_float, default=DEFAULT_HEADER_TIMEOUT,
                   help=f"seconds for a request's head, else 408 (default {DEFAULT_HEADER_TIMEOUT:g})")
    s.add_argument("--max-header-bytes", type=int, default=DEFAULT_MAX_HEADER_BYTES,
                   help=f"largest request head, else 431 (default {DEFAULT_MAX_HEADER_BYTES})")
    s.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                   help=f"open connections, else 503 (default {DEFAULT_MAX_CONNECTIONS})")
    s.add_argument("--max-streams", type=int, default=A.DEFAULT_MAX_STREAMS,
                   help=f"open /stream WebSockets, else closed with 1013 (default {A.DEFAULT_MAX_STREAMS})")
    s.add_argument("--stream-max-seconds", type=finite_float, default=A.DEFAULT_STREAM_MAX_SECONDS,
                   help=f"longest stream in seconds of audio (default {A.DEFAULT_STREAM_MAX_SECONDS:g})")
    s.add_argument("--stream-idle-timeout", type=finite_float, default=A.DEFAULT_STREAM_IDLE_TIMEOUT,
                   help=f"a stream silent this many seconds is closed (default {A.DEFAULT_STREAM_IDLE_TIMEOUT:g})")
    s.add_argument("--max-message-bytes", type=int, default=A.DEFAULT_MAX_MESSAGE_BYTES,
                   help=f"largest WebSocket message (default {A.DEFAULT_MAX_MESSAGE_BYTES}, 1 MiB)")
    s.add_argument("--max-seconds", type=finite_float, default=A.DEFAULT_MAX_SECONDS, metavar="S",
                   help="refuse (400) a /score body holding more than this many seconds of audio, checked on its "
                   f"header before decoding (default {A.DEFAULT_MAX_SECONDS:g}; 0 = no limit)")
    s.add_argument("--output", default="score", choices=["score", "decision"],
                   help="answer the score (default) or only the decision (a decision-only service)")
    s.add_argument("--threshold", type=finite_float,
                   help="bona fide iff score >= this (a finite number): the decision of --output decision "
                   "(default 0), and a decision beside each stream window's score when given")
    s.set_defaults(func=cmd_serve)


def cmd_serve(a: argparse.Namespace) -> int:
    from models.hf import check_label_map as _check_label_map
    from bench.serve.app import serve

    _check_label_map(a.label_map, [a.model])
    serve(a.model, checkpoint=a.checkpoint, host=a.host, port=a.port, policy=a.policy, device=a.device,
          label_map=a.label_map,
          log_level="debug" if a.verbose >= 2 else "info", max_bytes=a.max_bytes, max_concurrent=a.max_concurrent,
          max_queue=a.max_queue, output=a.output, threshold=a.threshold, batch_size=a.batch_size,
          batch_wait_ms=a.batch_wait_ms, max_body_memory=a.max_body_memory, read_timeout=a.read_timeout,
          header_timeout=a.header_timeout, max_header_bytes=a.max_header_bytes, max_connections=a.max_connections,
          max_streams=a.max_streams, stream_max_seconds=a.stream_max_seconds,
          stream_idle_timeout=a.stream_idle_timeout, max_message_bytes=a.max_message_bytes,
          max_seconds=a.max_seconds or None)
    return 0
