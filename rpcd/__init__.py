"""rpcd: a configuration-as-code connection manager and RPC daemon.

The handler API is ``from rpcd import CallContext, Fault`` (``rpcd.handler``).
"""

from rpcd.errors import Fault
from rpcd.handler import CallContext

__all__ = ["CallContext", "Fault", "__version__"]

__version__ = "0.1.0"
