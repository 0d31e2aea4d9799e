"""`make audit`: judge a pip-audit JSON report of the locked dependencies, honestly.

``make audit`` exports ``uv.lock`` as pinned, hashed requirements, runs pip-audit on them
(``--disable-pip``: nothing is installed) and hands its JSON report and exit status here.
pip-audit itself says "No known vulnerabilities found" and exits 0 even when it could not
look a single package up (every dependency *skipped*: "Dependency not found on PyPI and
could not be audited"), which is what happens where the advisory source (PyPI's JSON API,
or OSV) cannot be reached. This verdict refuses that: the audit passes only when every
locked dependency was actually checked and none has a known vulnerability.

Exit status: 0 audited and clean; 1 known vulnerabilities; 2 the audit could not be done
(advisory source unreachable, packages skipped, no report).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLEAN, VULNERABLE, NOT_AUDITED = 0, 1, 2


@dataclass
class Verdict:
    """What the report says: skipped packages (with why), vulnerable ones, and how many were checked."""

    audited: int = 0
    skipped: list[str] = field(default_factory=list)
    vulnerable: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        """The exit status ``make audit`` ends with."""
        if self.skipped or not self.audited:
            return NOT_AUDITED
        return VULNERABLE if self.vulnerable else CLEAN


def judge(report: dict[str, Any]) -> Verdict:
    """Read pip-audit's JSON report (``{"dependencies": [{name, version, vulns} | {name, skip_reason}]}``)."""
    verdict = Verdict()
    for dependency in report.get("dependencies", []):
        name = f"{dependency.get('name')} {dependency.get('version', '')}".strip()
        if "skip_reason" in dependency:
            verdict.skipped.append(f"{name}: {dependency['skip_reason']}")
            continue
        verdict.audited += 1
        ids = [v.get("id", "?") for v in dependency.get("vulns", [])]
        if ids:
            verdict.vulnerable.append(f"{name}: {', '.join(ids)}")
    return verdict


def explain(verdict: Verdict, pip_audit_status: int, errors: str) -> str:
    """The message ``make audit`` prints: what was checked, and plainly why it failed."""
    lines: list[str] = []
    if not verdict.skipped and not verdict.audited:
        lines.append("make audit: NOT AUDITED: pip-audit produced no report of any dependency.")
    elif verdict.skipped:
        lines.append(f"make audit: NOT AUDITED: the advisory source could not be reached or did not know the "
                     f"packages: {len(verdict.skipped)} of {len(verdict.skipped) + verdict.audited} locked "
                     "dependencies were skipped, so nothing can be said about their vulnerabilities.")
        lines += [f"  skipped {s}" for s in verdict.skipped[:5]]
        if len(verdict.skipped) > 5:
            lines.append(f"  ... and {len(verdict.skipped) - 5} more")
    if pip_audit_status and not verdict.vulnerable:
        last = [line for line in errors.strip().splitlines() if line.strip()][-1:] or ["(no message)"]
        lines.append(f"make audit: pip-audit failed (exit {pip_audit_status}): {last[0][:300]}")
    if verdict.vulnerable:
        lines.append(f"make audit: {len(verdict.vulnerable)} locked dependencies have known vulnerabilities:")
        lines += [f"  {v}" for v in verdict.vulnerable]
    if not lines:
        lines.append(f"make audit: {verdict.audited} locked dependencies audited, no known vulnerabilities")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``dependency_audit.py REPORT.json PIP_AUDIT_STATUS ERRORS.log``."""
    report_path, status_text, errors_path = argv
    errors = Path(errors_path).read_text(errors="replace") if Path(errors_path).exists() else ""
    try:
        report = json.loads(Path(report_path).read_text())
    except (OSError, ValueError):
        report = {}
    verdict = judge(report)
    print(explain(verdict, int(status_text), errors), file=sys.stderr if verdict.status else sys.stdout)
    if int(status_text) and verdict.status == CLEAN:  # pip-audit failed yet the report looks clean
        return NOT_AUDITED
    return verdict.status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
