"""Importers: an existing site's connections become a config tree (``rpcd import``).

One source so far, Mahara 16.10+ (``client_connections_institution`` and
``client_connections_config``). The work is split by job: ``rows`` parses the database's rows
within bounds, ``source`` reads them from PostgreSQL or MySQL/MariaDB, ``mahara`` maps them to
a tree (pure), ``writer`` writes the TOML files, the secret files and the checklist, and
``command`` is the ``rpcd import`` sub-command.
"""
