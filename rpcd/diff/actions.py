"""What a change needs besides a reload: pure, from the two catalogs (and the handler modules
whose code changed, which the command finds in git or on disk).

- a new ``{ credential = … }`` reference: a ``LoadCredential=`` line in the unit and a restart
  (systemd copies credentials when the service starts; a reload does not load new ones);
- a new ``{ env = … }`` reference: the variable in the unit's environment and a restart (a
  running process's environment cannot be changed from outside);
- a handler module whose code changed: a restart (code is imported once per process);
- a new institution folder under ``connections.d/``: a CODEOWNERS line for its admins.

Anything else a reload applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from rpcd.config import Catalog
from rpcd.config.scopes import folder_of

#: Where operations.md installs credential files for LoadCredential=.
CREDENTIAL_DIR = "/etc/rpcd/credentials"


class Need(StrEnum):
    LOAD_CREDENTIAL = "load-credential"
    ENVIRONMENT = "environment"
    RESTART = "restart"
    CODEOWNERS = "codeowners"
    RELOAD = "reload"


@dataclass(frozen=True, slots=True)
class NextStep:
    """One thing to do after merging: what, about which subject, and the line to add."""

    need: Need
    subject: str
    text: str


def _references(catalog: Catalog, kind: str, institution: str | None = None) -> dict[str, str]:
    """Secret names of one kind (env, credential) → the first connection that references it
    (``rpcd.toml`` for the site proxy); with ``institution``, of the connections that serve it
    (or everyone, as the global ones and the site proxy do) only."""
    found: dict[str, str] = {}
    for full_id, _, ref, source, _ in catalog.secret_references():
        conn = catalog.connections.get(full_id)
        if (
            institution is not None
            and conn is not None
            and not (conn.is_global or institution in conn.institutions)
        ):
            continue
        name = getattr(ref, kind)
        if name is not None:
            found.setdefault(name, full_id or source)
    return found


def _folders(catalog: Catalog) -> dict[str, str]:
    """Institution folders that hold connections → one file in it."""
    found: dict[str, str] = {}
    for conn in catalog.connections.values():
        folder = folder_of(conn.source)
        if folder is not None:
            found.setdefault(folder, conn.source)
    return found


def handler_modules(catalog: Catalog) -> set[str]:
    """The modules the catalog's methods import (``module:function``)."""
    return {
        method.function.partition(":")[0]
        for service in catalog.services.values()
        for method in service.method
        if method.function
    }


def next_steps(
    base: Catalog,
    head: Catalog,
    changed_modules: Iterable[str] = (),
    *,
    changed: bool,
    institution: str | None = None,
) -> tuple[NextStep, ...]:
    """What applying ``head`` over ``base`` needs; a reload alone when nothing else. With
    ``institution``, the credentials, variables and folders of that institution only; the
    verdict (restart or reload) stays the whole change's, since the deploy is one."""
    steps = _steps(base, head, changed_modules, changed=changed)
    if institution is None:
        return steps
    own = set(_references(head, "credential", institution)) | set(
        _references(head, "env", institution)
    )
    return tuple(
        s
        for s in steps
        if (s.need in (Need.LOAD_CREDENTIAL, Need.ENVIRONMENT) and s.subject in own)
        or (s.need is Need.CODEOWNERS and s.subject == institution)
        or s.need in (Need.RESTART, Need.RELOAD)
    )


def _steps(
    base: Catalog, head: Catalog, changed_modules: Iterable[str], *, changed: bool
) -> tuple[NextStep, ...]:
    steps: list[NextStep] = []
    old = _references(base, "credential")
    for name, full_id in sorted(_references(head, "credential").items()):
        if name not in old:
            steps.append(
                NextStep(
                    Need.LOAD_CREDENTIAL,
                    name,
                    f"new credential `{name}` ({full_id}): add "
                    f"LoadCredential={name}:{CREDENTIAL_DIR}/{name} to the unit (file root-owned, "
                    "mode 0600), then restart: credentials load only when the service starts",
                )
            )
    old = _references(base, "env")
    for name, full_id in sorted(_references(head, "env").items()):
        if name not in old:
            steps.append(
                NextStep(
                    Need.ENVIRONMENT,
                    name,
                    f"new environment variable `{name}` ({full_id}): set it in the unit "
                    "(Environment= or an EnvironmentFile=), then restart: a running process's "
                    "environment cannot change",
                )
            )
    used = handler_modules(head)
    for module in sorted(set(changed_modules) & used):
        steps.append(
            NextStep(
                Need.RESTART,
                module,
                f"handler module `{module}` changed: restart, since code is imported once per "
                "process and a reload keeps the old code",
            )
        )
    before = _folders(base)
    for folder, source in sorted(_folders(head).items()):
        if folder not in before and folder in head.institutions:
            steps.append(
                NextStep(
                    Need.CODEOWNERS,
                    folder,
                    f"new institution folder connections.d/{folder}/ ({source}): add a CODEOWNERS "
                    f"line for its admins, e.g. `/connections.d/{folder}/ @<org>/{folder}-admins`",
                )
            )
    if any(s.need in (Need.LOAD_CREDENTIAL, Need.ENVIRONMENT) for s in steps) and not any(
        s.need is Need.RESTART for s in steps
    ):
        steps.append(
            NextStep(Need.RESTART, "service", "restart (systemctl restart rpcd), not a reload")
        )
    elif changed and not any(s.need is Need.RESTART for s in steps):
        steps.append(
            NextStep(Need.RELOAD, "service", "a reload applies it (systemctl reload rpcd)")
        )
    return tuple(steps)
