"""The daemon: aiohttp app, one dispatcher behind XML-RPC and JSON-RPC, auth, sessions, /v1 API."""
