"""Example handlers for the example tree (services.d/)."""
