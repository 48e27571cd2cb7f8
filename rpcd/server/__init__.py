"""The daemon (``rpcd serve``), in three rooms.

- ``core/``: the RPC core, from a method name to a value (dispatch, ``system.*`` methods,
  auth, sessions, throttle, signatures, call budget, the catalog as served, outbound calls);
  no HTTP in it.
- ``edge/``: HTTP (the one request skeleton, the XML-RPC, JSON-RPC and ``/v1`` adapters, the
  app and its keys, the connection guard).
- ``ops/``: running it (logging, metrics, reload, systemd notify, the serve loop, core dumps).

``cli.py`` is the ``rpcd serve`` command.
"""
