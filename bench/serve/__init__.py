"""``bench serve``: one detector behind an HTTP service (``app``: starlette on uvicorn) and its command-line options
(``cli``).

May import: ``bench.scoring``, ``foundation`` and ``models``; never ``bench.run`` or ``bench.train``.
"""
