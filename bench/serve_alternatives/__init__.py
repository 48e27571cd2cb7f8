"""The servers ``bench/serve.py`` measures rpcd against, and the request payloads it sends."""
