"""The sandboxes' fault plan: counts, rates, every n-th request, and shares of all requests."""

from __future__ import annotations

from collections import Counter

import pytest

from connectors.kit.sandbox import FaultPlan


def fired(plan: FaultPlan, requests: int, operation: str = "save") -> list[str | None]:
    return [plan.next_fault(operation) for _ in range(requests)]


def test_every_nth_request_is_hit_and_only_those():
    # given a token that lives 100 calls
    plan = FaultPlan()
    plan.arm("auth_expired", every=100, times=None)
    # when 1,000 requests arrive, then exactly the 100th, 200th, … find it expired
    hits = [n for n, kind in enumerate(fired(plan, 1000), start=1) if kind == "auth_expired"]
    assert hits == list(range(100, 1001, 100))


def test_every_counts_only_the_operations_it_is_limited_to():
    plan = FaultPlan()
    plan.arm("auth_expired", every=2, times=None, operations=["save"])
    kinds = [plan.next_fault(op) for op in ("save", "query", "save", "query", "save", "save")]
    assert kinds == [None, None, "auth_expired", None, None, "auth_expired"]


def test_shares_are_shares_of_all_requests_with_a_seed_that_repeats():
    # given 20 % HTTP 500, 10 % timeouts and 5 % dropped replies of all requests
    shares = {"http_500": 0.20, "timeout": 0.10, "drop_response": 0.05}
    plan, again = FaultPlan(), FaultPlan()
    plan.arm_shares(shares, seed=3)
    again.arm_shares(shares, seed=3)
    kinds = fired(plan, 20_000)
    # then each kind strikes its share of all requests (not of what the others left)
    counts = Counter(kinds)
    for kind, share in shares.items():
        assert abs(counts[kind] / 20_000 - share) < 0.01, (kind, counts[kind])
    # and the same seed gives the same faults on the same requests
    assert fired(again, 20_000) == kinds


def test_a_token_expiry_every_n_calls_goes_with_the_shares():
    plan = FaultPlan()
    plan.arm("auth_expired", every=100, times=None)
    plan.arm_shares({"http_500": 0.2}, seed=1)
    kinds = fired(plan, 1000)
    assert [n for n, k in enumerate(kinds, start=1) if k == "auth_expired"] == list(range(100, 1001, 100))
    assert 150 < kinds.count("http_500") < 250


def test_the_admin_json_arms_every_and_nonsense_is_refused():
    plan = FaultPlan()
    plan.configure({"faults": [{"kind": "auth_expired", "every": 3, "times": None}]})
    assert fired(plan, 6) == [None, None, "auth_expired", None, None, "auth_expired"]
    assert plan.describe()["armed"][0]["every"] == 3
    with pytest.raises(ValueError, match="every"):
        plan.arm("http_500", every=0)
    with pytest.raises(ValueError, match="more than 1"):
        plan.arm_shares({"http_500": 0.7, "timeout": 0.5})
