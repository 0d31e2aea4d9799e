"""`make audit`'s verdict on pip-audit's report: clean only when every locked dependency was checked."""

from __future__ import annotations

import json

from tests.support.dependency_audit import CLEAN, NOT_AUDITED, VULNERABLE, explain, judge, main

SKIPPED = {"name": "httpx", "skip_reason": "Dependency not found on PyPI and could not be audited: httpx (0.28.1)"}
CHECKED = {"name": "httpx", "version": "0.28.1", "vulns": []}
VULN = {"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}]}


def test_every_package_skipped_is_not_audited_even_though_pip_audit_says_no_vulnerabilities():
    # given what pip-audit reports where its advisory source is unreachable (exit 0, all skipped)
    verdict = judge({"dependencies": [SKIPPED, {**SKIPPED, "name": "rich"}], "fixes": []})
    assert verdict.status == NOT_AUDITED
    message = explain(verdict, 0, "No known vulnerabilities found")
    assert "NOT AUDITED" in message and "2 of 2 locked dependencies were skipped" in message


def test_one_skipped_package_is_enough_to_fail():
    assert judge({"dependencies": [CHECKED, SKIPPED]}).status == NOT_AUDITED


def test_a_checked_vulnerable_package_is_named_with_its_advisory():
    verdict = judge({"dependencies": [CHECKED, VULN]})
    assert verdict.status == VULNERABLE
    assert "jinja2 3.1.2: GHSA-h5c8-rqwp-cp95" in explain(verdict, 1, "")


def test_all_checked_and_none_vulnerable_is_clean():
    verdict = judge({"dependencies": [CHECKED]})
    assert verdict.status == CLEAN and "1 locked dependencies audited" in explain(verdict, 0, "")


def test_no_report_and_a_failed_pip_audit_say_why(tmp_path):
    errors = tmp_path / "errors.log"
    errors.write_text("Traceback...\nConnectionError: Failed to resolve 'api.osv.dev'\n")
    assert main([str(tmp_path / "missing.json"), "1", str(errors)]) == NOT_AUDITED
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dependencies": [CHECKED]}))
    assert main([str(report), "1", str(errors)]) == NOT_AUDITED  # a clean-looking report from a failed run
    assert main([str(report), "0", str(errors)]) == CLEAN
