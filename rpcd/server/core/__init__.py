"""The RPC core: a call from its method name to its value, without HTTP."""
