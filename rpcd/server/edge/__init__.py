"""The HTTP edge: one request skeleton under the XML-RPC, JSON-RPC and /v1 adapters; the app."""
