"""Passwords of the hub's own logins: argon2id hashes, and the lockout rule.

- :func:`hash_password` / :func:`verify_password` use argon2-cffi's ``PasswordHasher``
  (argon2id, its RFC 9106 "low memory" profile: 64 MiB, 3 passes), so a stolen
  ``app_login`` table costs an attacker a slow, memory-hard guess per password.
- :func:`burn_time` runs one verification against a fixed dummy hash: signing in as a
  user who does not exist (or is disabled or locked) costs the same time as a wrong
  password, so the response time does not reveal which usernames exist.
- :func:`lockout_after_failure` is the lockout rule as a pure function: after
  ``max_failures`` wrong passwords in a row the login is locked for ``lock_minutes``;
  a success resets the count.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 200  # argon2 hashes anything, but a megabyte "password" is a denial of service

_HASHER = PasswordHasher()
# A hash of a random text nobody knows: verifying against it takes as long as a real one.
_DUMMY_HASH = _HASHER.hash("not a password: timing equaliser for unknown users")


class WeakPassword(ValueError):
    """A new password that the policy refuses (the message says why)."""


def check_policy(password: str) -> None:
    """Refuse a password shorter than MIN_LENGTH, longer than MAX_LENGTH, or all one character."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPassword("a password needs at least 4 different characters")


def hash_password(password: str) -> str:
    """The stored form of ``password`` (argon2id, salted; policy checked first)."""
    check_policy(password)
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (False for a malformed hash or an over-long input)."""
    if len(password) > MAX_LENGTH:
        burn_time()
        return False
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` was made with weaker parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def burn_time() -> None:
    """Spend one verification's time (unknown user, disabled or locked login)."""
    with contextlib.suppress(VerificationError):
        _HASHER.verify(_DUMMY_HASH, "wrong")


@dataclass(frozen=True)
class Lockout:
    """What a failed attempt leaves on the login: the new count and, when locked, until when."""

    failed_attempts: int
    locked_until: dt.datetime | None


def lockout_after_failure(failed_attempts: int, now: dt.datetime, *, max_failures: int,
                          lock_minutes: float) -> Lockout:
    """The login's state after one more wrong password.

    The count goes on while locked; reaching ``max_failures`` (and every further
    failure) locks the login for ``lock_minutes`` from ``now``.
    """
    count = failed_attempts + 1
    if count >= max_failures:
        return Lockout(count, now + dt.timedelta(minutes=lock_minutes))
    return Lockout(count, None)
