"""Lead rules and finance recipients are settings: validated with errors that name the rule and
the field, readable from hub.toml (``[[leads.rules]]``) or JSON in the environment; form keys are
secrets (environment only)."""

from __future__ import annotations

import pytest

from hub.errors import ConfigError
from hub.settings import Settings


def test_a_bad_rule_is_named_with_its_field(monkeypatch):
    monkeypatch.setenv("HUB_LEADS__RULES", '[{"name": "华东", "department": "华东销售部"}, '
                                           '{"name": "大单", "min_amount": "-1", "owner": "wecom:ka"}]')
    with pytest.raises(ConfigError, match=r"HUB_LEADS__RULES: .*rule 2 \('大单'\): min_amount: .*greater than or equal"):
        Settings()
    monkeypatch.setenv("HUB_LEADS__RULES", '[{"name": "x", "owner": "wecom:a", "team": "wecom:b"}]')
    with pytest.raises(ConfigError, match=r"rule 1 \('x'\): rule: give exactly one of owner, team or department "
                                          r"\(got owner, team\)"):
        Settings()
    monkeypatch.setenv("HUB_LEADS__RULES", '[{"name": "x", "owner": "wecom:a", "regoins": ["上海"]}]')
    with pytest.raises(ConfigError, match=r"rule 1 \('x'\): regoins: Extra inputs are not permitted"):
        Settings()
    monkeypatch.setenv("HUB_LEADS__RULES", '[{"name": "x", "owner": "wecom:a"}, {"name": "x", "owner": "id:2"}]')
    with pytest.raises(ConfigError, match=r"rule 2 \('x'\): name: another rule is named 'x'"):
        Settings()


def test_the_rule_table_may_live_in_hub_toml(tmp_path, monkeypatch):
    config = tmp_path / "hub.toml"
    config.write_text('[leads]\nfirst_followup_days = 2\n\n[[leads.rules]]\nname = "华东制造"\n'
                      'regions = ["上海", "江苏"]\nindustries = ["制造"]\nteam = "wecom:boss"\n\n'
                      '[[leads.rules]]\nname = "其余"\nmin_amount = 0\nmax_amount = 100000\ndepartment = "电销部"\n'
                      '\n[collections]\nfinance_recipients = "wecom:qian, employee:F01"\n', encoding="utf-8")
    monkeypatch.setenv("HUB_CONFIG_FILE", str(config))
    settings = Settings()
    assert [r.name for r in settings.leads.rules] == ["华东制造", "其余"]
    assert settings.leads.rules[0].team == "wecom:boss" and settings.leads.first_followup_days == 2
    assert settings.collections.recipients() == ("wecom:qian", "employee:F01")


def test_form_keys_are_secrets_from_the_environment_only(tmp_path, monkeypatch):
    config = tmp_path / "hub.toml"
    config.write_text('[leads]\nform_keys = "site=0123456789abcdef"\n', encoding="utf-8")
    monkeypatch.setenv("HUB_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError, match="is a secret"):
        Settings()
    monkeypatch.delenv("HUB_CONFIG_FILE")
    monkeypatch.setenv("HUB_LEADS__FORM_KEYS", "site=0123456789abcdef, expo=fedcba9876543210")
    assert Settings().leads.form_key_map() == {"site": "0123456789abcdef", "expo": "fedcba9876543210"}
    monkeypatch.setenv("HUB_LEADS__FORM_KEYS", "site=short")
    with pytest.raises(ConfigError, match="entry 1 must be form=key with a key of at least 16"):
        Settings().leads.form_key_map()


def test_finance_recipients_must_be_user_refs(monkeypatch):
    monkeypatch.setenv("HUB_COLLECTIONS__FINANCE_RECIPIENTS", "钱会计")
    with pytest.raises(ConfigError, match="HUB_COLLECTIONS__FINANCE_RECIPIENTS"):
        Settings()
