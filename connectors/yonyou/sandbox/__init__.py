"""A faithful local emulator of the YonBIP open API (reference ``erp-apis.md`` §3 "Yonyou sandbox").

- :mod:`.state`: the tenant's archives and vouchers, its rules and ``resubmitCheckKey`` replay;
- :mod:`.seed`: deterministic data from the one demo universe;
- :mod:`.app`: the Starlette app (auth service, discovery, business gateway, faults), ``create_app(...)``.

The vendor's Python package (``yonyouopenapisdk1``) works against it unchanged but for the
host (``http://127.0.0.1:<port>``, to which it appends ``/iuap-api-auth/…`` itself) and the
credentials in :data:`SANDBOX_CREDENTIALS`.
"""

from pydantic import SecretStr

from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.universe import crm_seed
from connectors.yonyou.sandbox.app import SANDBOX_CREDENTIALS, SandboxCredentials, YonyouSandbox, create_app
from connectors.yonyou.sandbox.seed import ORG_CODE, TRANSACTION_TYPE, SeedStats, seed_state
from connectors.yonyou.sandbox.state import YonyouState
from connectors.yonyou.settings import YonyouSettings
from hub.contracts import SandboxSpec


def client_settings(url: str, base: YonyouSettings) -> YonyouSettings:
    """``base`` pointed at a sandbox serving at ``url`` (discovery included), with its credentials."""
    creds = SANDBOX_CREDENTIALS
    return base.model_copy(update={
        "base_url": url.rstrip("/"), "tenant_id": creds.tenant_id, "app_key": creds.app_key,
        "app_secret": SecretStr(creds.app_secret), "org_code": ORG_CODE, "transaction_type_code": TRANSACTION_TYPE,
    })


SANDBOX: SandboxSpec[YonyouSettings] = SandboxSpec(
    create_app=create_app, serve=serve_in_thread, client_settings=client_settings, demo_seed=crm_seed)

__all__ = [
    "SANDBOX",
    "SANDBOX_CREDENTIALS",
    "SandboxCredentials",
    "SeedStats",
    "YonyouSandbox",
    "YonyouState",
    "client_settings",
    "create_app",
    "seed_state",
]
