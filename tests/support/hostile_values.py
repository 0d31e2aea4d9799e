"""Hostile values for property tests (hypothesis): what an ERP or chat platform might send.

One place for the strategies every property test draws from, so the mapping properties
(``tests/unit/test_mapping_properties.py``) and the engine properties
(``tests/integration/test_engine_properties.py``) feed the same kinds of bad input:
wrong types, NaN and 1E+400, negative and overflowing amounts, dates that do not exist,
NUL, lone surrogates, right-to-left marks and other odd Unicode, very long text, invalid
unified social credit codes, and whole records of such values.

How many examples a property gets is the *profile's* business, not the test's: the suite
runs the ``suite`` profile (modest counts, so ``make test`` stays fast), ``make soak``
sets ``HYPOTHESIS_PROFILE=soak`` for many more. :data:`PROPERTY` carries everything but
the count, so it follows the profile loaded by ``tests/conftest.py``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_COMMON: dict[str, Any] = {
    "deadline": None,  # the machine is shared and loaded: a slow example is not a failure
    "database": None,  # no example database under the work tree
    "derandomize": os.environ.get("CI") == "true",  # CI reproducible; by hand, new examples each run
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("suite", max_examples=60, **_COMMON)
settings.register_profile("soak", max_examples=1000, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "suite")


def load_profile() -> None:
    """Make ``HYPOTHESIS_PROFILE`` (default ``suite``) the default for every property test."""
    settings.load_profile(PROFILE)


load_profile()
PROPERTY = settings(**_COMMON)  # max_examples from the loaded profile

ODD_CHARACTERS = ["\x00", "\ud800", "\udfff", "\u200b", "\ufeff", "\u0301", "𠀀", "\u202e", "\n", "１"]
odd_text = st.lists(st.one_of(st.sampled_from(ODD_CHARACTERS), st.characters()), max_size=12).map("".join)
long_text = st.builds(lambda unit, n: unit * n, st.sampled_from(["a", "公", "\x00", " ", "9"]),
                      st.integers(0, 1200))
number_text = st.sampled_from([
    "1E+400", "-1E+400", "NaN", "-NaN", "Infinity", "-inf", "-0", "1e-400", "0.000000001", "12345678901234567.89",
    "9999999999999999.99", "1_000", "１２３", "1e999999999", "1E-999999999999", "0x10", " 12 ", "", "-500.00",
])
date_text = st.sampled_from([
    "2024-13-99", "2024-02-30T00:00:00", "0000-01-01", "0001-01-01T00:00:00", "9999-12-31T23:59:59+14:00",
    "/Date(99999999999999999)/", "/Date(-62135596800001)/", "/Date(" + "9" * 5000 + ")/", "2024-05-01T10:20:30",
    "2024-05-01T10:20:30.123", "/Date(1714530030000+0800)/", "2024-05-01 10:20:30", "2024-02-30 10:20:30",
    "上周五", "",
])
# Unified social credit codes (GB 32100-2015) that are not: a wrong check character, a
# letter the code never uses (I, O, S, V, Z), wrong length, full-width, lower case, blanks.
credit_code_text = st.sampled_from([
    "91440300708461136X", "91440300708461136", "914403007084611360", "9144030070846113IO", "ＡＢＣ",
    "91440300708461136t", " 91440300708461136T ", "000000000000000000", "ZZZZZZZZZZZZZZZZZZ", "",
])


def huge_integer() -> int:
    """A whole number Python cannot even print (int → text stops at 4300 digits)."""
    return 10**5000


# What a JSON reply can hold once decoded (Python's json refuses integers past 4300 digits,
# so a connector never hands the engine one) ...
decoded_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), odd_text, long_text, number_text, date_text, credit_code_text,
)
# ... and, for the pure mappings, anything a caller could pass, a 5000-digit integer included.
scalars = st.one_of(decoded_scalars, st.builds(huge_integer))


def _nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


json_like = _nested(scalars)
json_decoded = _nested(decoded_scalars)

REMOVE = object()  # a change that removes the field


def mutated(base: dict[str, Any], keys: tuple[str, ...],
            values: st.SearchStrategy[Any] = json_like) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with some of ``keys`` replaced by hostile ``values`` or removed."""
    changes = st.dictionaries(st.sampled_from(keys), st.one_of(values, st.just(REMOVE)), min_size=1,
                              max_size=4)
    return changes.map(lambda c: {k: v for k, v in {**base, **c}.items() if v is not REMOVE})


def hostile(keys: tuple[str, ...], values: st.SearchStrategy[Any] = json_like) -> st.SearchStrategy[dict[str, Any]]:
    """A record of hostile values only, over the keys the mapping reads (and others)."""
    return st.fixed_dictionaries({}, optional={key: values for key in keys})
