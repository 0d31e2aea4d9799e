"""Webhook signatures back to the CRM: HMAC-SHA256 over ``<timestamp>.<body>``, verified by receivers.

The known-answer vector was computed independently with ``openssl dgst -sha256 -hmac``
over the literal bytes ``1764230400.{"id":"evt_1","type":"order.in_erp"}``.
"""

from __future__ import annotations

import pytest

from connectors.crm.settings import CrmSettings
from connectors.crm.signing import SignatureError, signature, signature_header, verify

BODY = b'{"id":"evt_1","type":"order.in_erp"}'
T = 1764230400
NEW = "03a47ce8cebd3a6d1bf4bd5cbe4e973e51dabb614e03553de31d1ec407608507"  # HMAC key "whsec_test"
OLD = "d5e295ecf168753c8f31f98eececce23c75bbe83a26720dd1f0c52e87e6f95fe"  # HMAC key "whsec_old"


def test_given_the_vector_the_signature_is_the_known_answer():
    assert signature("whsec_test", T, BODY) == NEW
    assert signature_header(["whsec_test"], T, BODY) == f"t={T},v1={NEW}"


def test_during_a_rotation_every_secret_signs_and_a_receiver_holding_either_accepts():
    header = signature_header(["whsec_test", "whsec_old"], T, BODY)
    assert header == f"t={T},v1={NEW},v1={OLD}"
    assert verify(header, BODY, ["whsec_old"], now=T + 10) == T  # a receiver not yet rotated
    assert verify(header, BODY, ["whsec_test"], now=T) == T  # a receiver already rotated


@pytest.mark.parametrize(("header", "body", "secrets", "now", "reason"), [
    (None, BODY, ["whsec_test"], T, "no signature header"),
    (f"t={T},v1={NEW}", BODY + b" ", ["whsec_test"], T, "no signature matches"),  # body changed
    (f"t={T},v1={NEW}", BODY, ["another"], T, "no signature matches"),  # wrong secret
    (f"t={T + 1},v1={NEW}", BODY, ["whsec_test"], T, "no signature matches"),  # timestamp changed
    (f"t={T},v1={NEW}", BODY, ["whsec_test"], T + 301, "window"),  # replayed after 5 minutes
    (f"t={T},v1={NEW}", BODY, ["whsec_test"], T - 301, "window"),  # from the future
    (f"v1={NEW}", BODY, ["whsec_test"], T, "no timestamp"),
    (f"t={T}", BODY, ["whsec_test"], T, "no v1"),
    (f"t=abc,v1={NEW}", BODY, ["whsec_test"], T, "malformed"),
    ("garbage", BODY, ["whsec_test"], T, "malformed"),
    (f"t={T},v1=XYZ", BODY, ["whsec_test"], T, "no v1"),
])
def test_a_delivery_that_does_not_verify_is_refused_with_the_reason(header, body, secrets, now, reason):
    with pytest.raises(SignatureError, match=reason):
        verify(header, body, secrets, now=now)


def test_the_settings_refuse_plain_http_to_another_host_unless_allowed_and_unknown_events():
    with pytest.raises(ValueError, match="HUB_CRM__ALLOW_HTTP"):
        CrmSettings(base_url="http://crm.example.com/hooks")
    assert CrmSettings(base_url="http://crm.example.com/hooks", allow_http=True).base_url
    assert CrmSettings(base_url="http://127.0.0.1:9000/hooks").base_url  # this machine
    assert CrmSettings(base_url="https://crm.example.com/hooks").base_url
    with pytest.raises(ValueError, match=r"unknown event 'order\.shipped'"):
        CrmSettings(events="order.in_erp,order.shipped")


def test_the_settings_give_the_secrets_current_first_and_say_what_is_missing():
    rotating = CrmSettings(base_url="https://crm.example.com/hooks", signing_secret="new",
                           previous_signing_secret="old")
    assert rotating.secrets() == ["new", "old"]
    assert CrmSettings(base_url="https://crm.example.com/hooks").missing() == ["signing_secret"]
    assert not CrmSettings().is_configured()
    assert "new" not in repr(rotating) and "old" not in repr(rotating)


def readme_verifier():
    """The verification snippet of README "Webhooks back to the CRM", as a receiver would paste it."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- webhook-verify:begin -->", 1)[1].split("<!-- webhook-verify:end -->", 1)[0]
    code = block.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify_hub_webhook"]


def test_the_readme_snippet_accepts_what_the_hub_signs_and_refuses_the_rest():
    import time

    verify_hub_webhook = readme_verifier()
    now = int(time.time())
    header = signature_header(["whsec_test", "whsec_old"], now, BODY)
    assert verify_hub_webhook(BODY, header, ["whsec_old"])
    assert not verify_hub_webhook(BODY + b"x", header, ["whsec_old"])
    assert not verify_hub_webhook(BODY, header, ["another"])
    assert not verify_hub_webhook(BODY, signature_header(["whsec_test"], now - 400, BODY), ["whsec_test"])
