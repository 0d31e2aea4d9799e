"""A faithful local emulator of the Kingdee K/3 Cloud WebAPI (reference ``erp-apis.md`` §3).

- :mod:`.forms`: form metadata (field keys, entities, references);
- :mod:`.filter`: the FilterString / OrderString parser;
- :mod:`.state`: the data centre's state and rules (queries, saves, status machine);
- :mod:`.auth`: test credentials, sessions, signature verification;
- :mod:`.seed`: deterministic realistic data;
- :mod:`.app`: the Starlette app, ``create_app(...)``.

The official SDK ``k3cloud_webapi_sdk`` works against it unchanged but for the base URL
(``http://127.0.0.1:<port>/k3cloud/``) and the credentials in :data:`SANDBOX_CREDENTIALS`.
"""

from pydantic import SecretStr

from connectors.kingdee.sandbox.app import KingdeeSandbox, create_app
from connectors.kingdee.sandbox.auth import SANDBOX_CREDENTIALS, SandboxCredentials
from connectors.kingdee.sandbox.seed import ORG_NUMBER, SeedStats, seed_state
from connectors.kingdee.sandbox.state import KingdeeState
from connectors.kingdee.settings import KingdeeSettings
from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.universe import crm_seed
from hub.contracts import SandboxSpec


def client_settings(url: str, base: KingdeeSettings) -> KingdeeSettings:
    """``base`` pointed at a sandbox serving at ``url``, with the sandbox's credentials."""
    creds = SANDBOX_CREDENTIALS
    return base.model_copy(update={
        "base_url": url.rstrip("/") + "/k3cloud/", "acct_id": creds.acct_id, "username": creds.username,
        "app_id": creds.app_id, "app_secret": SecretStr(creds.app_secret), "auth_mode": "signed",
    })


SANDBOX: SandboxSpec[KingdeeSettings] = SandboxSpec(
    create_app=create_app, serve=serve_in_thread, client_settings=client_settings, demo_seed=crm_seed)

__all__ = [
    "ORG_NUMBER",
    "SANDBOX",
    "SANDBOX_CREDENTIALS",
    "KingdeeSandbox",
    "KingdeeState",
    "SandboxCredentials",
    "SeedStats",
    "client_settings",
    "create_app",
    "seed_state",
]
