"""rpcd: a configuration-as-code connection manager and RPC daemon."""

__version__ = "0.1.0"
