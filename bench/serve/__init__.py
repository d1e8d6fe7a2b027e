"""``bench serve``: one detector behind an HTTP service: ``app`` (the Service, uvicorn's configuration), ``routes``
(/health, /score, /metrics), ``stream`` (the /stream WebSocket), ``batcher`` (dynamic batching across requests and
streams), ``body`` (request bodies within a memory budget), ``protocol`` (header and read timeouts, 408/431),
``metrics`` (Prometheus), and ``cli`` (its command-line options).

May import: ``bench.scoring``, ``bench.terminal`` (argument types), ``foundation`` and ``models``; never
``bench.run`` or ``bench.train``.
"""
