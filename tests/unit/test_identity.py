"""Identity rules as tables: credit codes, name normalization, the resolver's verdicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.identity import (
    CREDIT_CODE_CHARSET,
    CustomerCandidate,
    KnownCustomer,
    Lookups,
    credit_code_check_char,
    credit_code_problem,
    is_valid_credit_code,
    normalize_company_name,
    normalize_mobile,
    resolve_customer,
)
from tests.support.synthetic import synthetic_credit_code

# Codes published on real business licences (public registration data).
REAL_CODES = ["91350100M000100Y43", "91110000802100433B", "91440300708461136T", "9144030071526726XG"]


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_credit_codes_pass_the_check(code):
    assert credit_code_problem(code) is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("91350100M000100Y44", "fails the GB 32100-2015 check"),  # last char altered
        ("91350100M000100Y4", "has 17 characters"),
        ("91350100M00010OY43", "not allowed"),  # letter O is excluded from the charset
        ("91350100I000100Y43", "not allowed"),  # letter I too
    ],
)
def test_invalid_credit_codes_are_explained(raw, problem):
    assert problem in (credit_code_problem(raw) or "")


def test_full_width_and_lower_case_codes_are_normalized_before_checking():
    assert is_valid_credit_code("９１３５０１００ｍ０００１００ｙ４３")
    assert is_valid_credit_code(" 91350100m000100y43 ")


@given(st.text(alphabet=CREDIT_CODE_CHARSET, min_size=17, max_size=17))
def test_every_17_char_body_has_exactly_one_valid_check_char(body):
    valid = [ch for ch in CREDIT_CODE_CHARSET if credit_code_problem(body + ch) is None]
    assert valid == [credit_code_check_char(body)]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("深圳市腾飞科技有限公司", "深圳市腾飞科技有限责任公司"),
        ("深圳市腾飞科技有限公司", "深圳市 腾飞科技（中国）有限公司"),
        ("上海华创电子股份有限公司", "上海华创电子"),
        ("ＡＢＣ（上海）贸易有限公司", "abc(上海)贸易公司"),
        ("北京·中科环保有限公司", "北京中科环保有限公司"),
        ("Acme Trading Co., Ltd.", "ACME TRADING"),
    ],
)
def test_equivalent_company_names_normalize_equal(a, b):
    assert normalize_company_name(a) == normalize_company_name(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("深圳市腾飞科技有限公司", "深圳市腾飞电子有限公司"), ("上海华创", "上海华创电子")],
)
def test_different_company_names_stay_different(a, b):
    assert normalize_company_name(a) != normalize_company_name(b)


@pytest.mark.parametrize(("raw", "mobile"), [("+86 138-1234-5678", "13812345678"), ("8613812345678", "13812345678"),
                                             ("", None), (None, None)])
def test_mobiles_are_normalized(raw, mobile):
    assert normalize_mobile(raw) == mobile


CODE_A, CODE_B = synthetic_credit_code(1), synthetic_credit_code(2)
NAME = "深圳市腾飞科技有限公司"
KEY = normalize_company_name(NAME)


@pytest.mark.parametrize(
    ("candidate", "lookups", "expected_id", "rule", "conflicts"),
    [
        # nothing known: a new golden record
        (CustomerCandidate("K1", NAME, CODE_A), Lookups(), None, "new", []),
        # an earlier link wins
        (CustomerCandidate("K1", NAME, CODE_A), Lookups(by_link={"K1": 7}), 7, "link", []),
        # linked, but the code now belongs to another customer: keep the link, flag it, do not steal the code
        (CustomerCandidate("K1", NAME, CODE_A),
         Lookups(by_link={"K1": 7}, by_credit_code={CODE_A: KnownCustomer(9, CODE_A)}), 7, "link",
         ["credit_code_points_elsewhere"]),
        # the credit code finds the customer even when the name differs
        (CustomerCandidate("K1", "腾飞（深圳）科技集团", CODE_A),
         Lookups(by_credit_code={CODE_A: KnownCustomer(3, CODE_A)}), 3, "credit_code", []),
        # code says 3, name says 4 (which has another code): code wins, conflict recorded
        (CustomerCandidate("K1", NAME, CODE_A),
         Lookups(by_credit_code={CODE_A: KnownCustomer(3, CODE_A)}, by_name={KEY: (KnownCustomer(4, CODE_B),)}),
         3, "credit_code", ["credit_code_and_name_disagree"]),
        # name matches a customer without a code: same company, the code gets filled in
        (CustomerCandidate("K1", "深圳市腾飞科技有限责任公司", CODE_A), Lookups(by_name={KEY: (KnownCustomer(5, None),)}),
         5, "name", []),
        # same name but a different valid code: two companies, never merged
        (CustomerCandidate("K1", NAME, CODE_A), Lookups(by_name={KEY: (KnownCustomer(5, CODE_B),)}), None, "new",
         ["same_name_different_credit_code"]),
        # the name matches two customers: ambiguous, not merged
        (CustomerCandidate("K1", NAME, None), Lookups(by_name={KEY: (KnownCustomer(5, None), KnownCustomer(6, None))}),
         None, "new", ["ambiguous_name"]),
        # an invalid code is reported and ignored; the name still matches
        (CustomerCandidate("K1", NAME, "91440300708461136X"), Lookups(by_name={KEY: (KnownCustomer(5, None),)}), 5,
         "name", ["invalid_credit_code"]),
        # contact mobile is the last rule
        (CustomerCandidate("K1", "完全不同的名字", None, mobiles=("+86 13800000001",)),
         Lookups(by_contact={"13800000001": frozenset({8})}), 8, "contact", []),
        (CustomerCandidate("K1", "完全不同的名字", None, mobiles=("13800000001",)),
         Lookups(by_contact={"13800000001": frozenset({8, 9})}), None, "new", ["ambiguous_contact"]),
    ],
)
def test_resolver_verdicts(candidate, lookups, expected_id, rule, conflicts):
    verdict = resolve_customer(candidate, lookups)
    assert (verdict.customer_id, verdict.rule) == (expected_id, rule)
    assert [c.reason for c in verdict.conflicts] == conflicts


def test_invalid_code_is_never_stored():
    verdict = resolve_customer(CustomerCandidate("K1", NAME, "91440300708461136X"), Lookups())
    assert verdict.credit_code is None
