"""The principal: who a request (or a CLI command) acts for, and what it may do."""

from __future__ import annotations

from dataclasses import dataclass

from hub.access.roles import CAPABILITIES, Capability, Role


@dataclass(frozen=True)
class Principal:
    """A signed-in person or a machine token.

    ``user_id`` is the internal user the principal acts as (required for sales and
    managers, whose visibility follows ownership); ``via`` says how it signed in
    (``password``, ``wecom``, ``dingtalk``, ``token``, ``cli``); ``ref`` identifies the
    credential (``session:12``, ``token:3``) for the audit and for idempotency keys.
    """

    role: Role
    user_id: int | None
    name: str
    via: str
    ref: str

    def can(self, capability: Capability) -> bool:
        """Whether this principal's role carries ``capability``."""
        return capability in CAPABILITIES[self.role]

    @property
    def sees_all_customers(self) -> bool:
        """True when no ownership filter applies (finance, admin, the CRM)."""
        return self.can(Capability.VIEW_ALL_CUSTOMERS)

    @property
    def actor(self) -> str:
        """How the audit log names this principal: ``web:wecom:zhangsan``, ``api:token:3``, ``cli``."""
        if self.via == "cli":
            return "cli"
        return f"{'api' if self.via == 'token' else 'web'}:{self.via}:{self.name}"[:100]


def cli_principal() -> Principal:
    """Whoever runs the ``hub`` CLI on the server: an administrator by definition."""
    return Principal(role=Role.ADMIN, user_id=None, name="cli", via="cli", ref="cli")
