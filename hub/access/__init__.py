"""Who is asking, and what they may see and do: one place for pages, the API and the CLI.

- :mod:`hub.access.roles` — the roles and what each may do (:class:`Capability`);
- :mod:`hub.access.principal` — :class:`Principal`, the signed-in person or machine;
- :mod:`hub.access.visibility` — which customers a principal sees (owners and teams),
  as a SQL condition every query that lists or reads customers applies;
- :mod:`hub.access.secrets` — bearer tokens and session tokens: made, hashed, looked up.
- :mod:`hub.access.passwords` — argon2id password hashes and the lockout rule;
- :mod:`hub.access.accounts` — logins, sessions, API tokens and directory roles in the
  database (what the sign-in routes and ``hub user|token|role`` do), audited;
- :mod:`hub.access.masking` — personal data masked for those who may not see it (pure);
- :mod:`hub.access.links` — chat cards' sign-in links and the local-path rule for ``next``.

Nothing here speaks HTTP: :mod:`hub.web.auth` turns a request into a Principal with these.
"""

from hub.access.principal import Principal
from hub.access.roles import Capability, Role

__all__ = ["Capability", "Principal", "Role"]
