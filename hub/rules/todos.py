"""CRM tasks as to-dos on the chat platform of their assignee, both ways.

**Out.** :func:`evaluate_todos` keeps every task's to-do in step with the task on the
assignee's platform (:mod:`hub.rules.channels`: one platform per person) when that
platform holds to-dos (its connector has a ``todo`` writer; DingTalk does, WeCom has no
to-do API for self-built apps). An open task gets a to-do; a changed title, description,
due time or assignee updates it; a task closed in the CRM marks it done. One push per
task is in flight at a time (``push_state[<platform>]["todo"]["queued"]``), so changes
reach the platform in order, and each push is keyed ``todo:task-<id>:<n>``. The to-do's
``sourceId`` is ``crm-task-<id>``: the writer looks it up before creating anything.

**Back.** A to-do ticked off on the platform closes the CRM task with who and when
(``task.completed_by_id``, ``completed_at``, ``completed_via``): from the platform's event
(:func:`record_todo_event`, wired into the web callbacks) or, without callbacks, from the
connector's completion stream (``hub.engine.targets.complete_tasks``), or when a push finds
it done already. A task completed *via* a platform is not pushed back to it: its to-do is
done there, so nothing echoes out.

What each push's outcome changes is registered for the ``todo`` writer
(``hub.outbox.effects``): the platform's to-do id linked to the task
(``external_identity``, object ``todo``), the state on ``task.push_state``, the person's
platform alias cached on ``internal_user`` (DingTalk unionId), a failure on the task.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.dingtalk.callbacks import TODO_EVENT
from hub.access.links import card_link
from hub.contracts import WriteResult
from hub.engine.targets import TODO_OBJECT, complete_task, task_of_todo
from hub.errors import RecipientError
from hub.outbox import effects, enqueue
from hub.outbox.effects import Failure
from hub.rules.channels import Channel, channels, choice_sql
from hub.rules.reminders import record_push_problem


@dataclass(frozen=True)
class TodoPolicy:
    """Where to-dos link to and which platforms are preferred."""

    profile_base_url: str = "http://127.0.0.1:8000"
    channels: tuple[str, ...] = ()


@dataclass
class TodoCounts:
    """What one evaluation did."""

    queued: int = 0  # pushes put in the outbox
    in_step: int = 0  # to-dos already matching their task
    waiting: int = 0  # a push of the task's to-do is still in flight


def source_id(task_id: int) -> str:
    """The business id of a task's to-do on every platform (URL-safe)."""
    return f"crm-task-{task_id}"


def _todo_state(push_state: Mapping[str, Any], channel: str) -> dict[str, Any]:
    state = (push_state.get(channel) or {}).get("todo")
    return dict(state) if isinstance(state, Mapping) else {}


def _save_state(conn: Connection, task_id: int, channel: str, state: Mapping[str, Any]) -> None:
    conn.execute(sa.text(
        "UPDATE task SET push_state = push_state || jsonb_build_object(CAST(:ch AS text), "
        "COALESCE(push_state -> CAST(:ch AS text), '{}'::jsonb) || jsonb_build_object('todo', CAST(:state AS jsonb))) "
        "WHERE id = :id"), {"ch": channel, "state": json.dumps(state, ensure_ascii=False, default=str), "id": task_id})


def evaluate_todos(conn: Connection, now: dt.datetime, policy: TodoPolicy) -> TodoCounts:
    """Queue a push for every task whose to-do is not in step (see the module docstring)."""
    counts = TodoCounts()
    ordered = channels(policy.channels)
    holding = [c for c in ordered if c.holds_todos]
    if not holding:
        return counts
    chosen, account, alias = choice_sql("a", ordered)
    # closed tasks only while their to-do may still be open on the platform: pushed, not
    # known done there, and not closed there (scans stay the size of the open work)
    has_todo = " OR ".join(
        f"(t.push_state -> '{c.system}' ? 'todo' AND t.completed_via IS DISTINCT FROM '{c.system}' AND "
        f"COALESCE(t.push_state #>> '{{{c.system},todo,synced,status}}', '') NOT IN ('done', 'not_created'))"
        for c in holding)
    rows = conn.execute(sa.text(
        f"""
        SELECT t.id, t.title, t.description, t.due_at, t.status, t.completed_via, t.customer_id, t.push_state,
               c.name AS customer_name, a.id AS assignee_id, {chosen} AS channel, {account} AS account,
               {alias} AS alias
        FROM task t JOIN internal_user a ON a.id = t.assignee_id LEFT JOIN customer c ON c.id = t.customer_id
        WHERE t.status = 'open' OR {has_todo}
        ORDER BY t.id
        """)).all()
    by_system = {c.system: c for c in holding}
    for row in rows:
        _evaluate(conn, row, by_system, policy, now, counts)
    return counts


def _evaluate(conn: Connection, row: Any, holding: Mapping[str, Channel], policy: TodoPolicy, now: dt.datetime,
              counts: TodoCounts) -> None:
    done = row.status != "open"
    # an open task lives on its assignee's platform; a closed one where its to-do is
    platform = row.channel if not done else next((s for s in holding if _todo_state(row.push_state, s)), None)
    if platform is None or platform not in holding:
        return
    state = _todo_state(row.push_state, platform)
    if state.get("queued"):
        counts.waiting += 1
        return
    if done and (row.completed_via == platform or not state.get("synced")):
        return  # done there already (no echo), or never created: nothing to close
    if row.account is None and not done:
        return  # the person left the platform; the reminders rule reports it
    base = policy.profile_base_url.rstrip("/")
    desired = {
        "title": row.title, "customer_name": row.customer_name, "description": row.description or "",
        "due_at": row.due_at.isoformat() if row.due_at else None, "done": done,
        "recipient": row.account or (state.get("synced") or {}).get("recipient"),
    }
    version = hashlib.sha256(json.dumps(desired, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
    if version in ((state.get("synced") or {}).get("version"), (state.get("failed") or {}).get("version")):
        counts.in_step += 1
        return
    seq = int(state.get("seq") or 0) + 1
    payload = {
        **desired, "task_id": row.id, "source_id": source_id(row.id), "recipient_user_id": row.assignee_id,
        "recipient_alias": row.alias, "version": version, "seq": seq,
        "detail_url": card_link(base, platform, f"/customers/{row.customer_id}" if row.customer_id
                                else f"/tasks/{row.id}"),
    }
    if enqueue(conn, f"{platform}.todo", f"todo:task-{row.id}:{seq}", payload) is not None:
        _save_state(conn, row.id, platform, {**state, "seq": seq,
                                             "queued": {"version": version, "seq": seq, "at": now.isoformat()}})
        counts.queued += 1


# ---------------------------------------------------------------------- outcomes


def _channel_of(kind: str) -> Channel:
    system = kind.partition(".")[0]
    return next(c for c in channels() if c.system == system)


def _user_by_alias(conn: Connection, channel: Channel, alias: Any) -> int | None:
    if not channel.alias_column or not isinstance(alias, str) or not alias:
        return None
    found = conn.execute(sa.text(f"SELECT id FROM internal_user WHERE {channel.alias_column} = :a ORDER BY id"),
                         {"a": alias}).scalar()
    return int(found) if found is not None else None


def _todo_pushed(conn: Connection, kind: str, payload: dict[str, Any], result: WriteResult) -> None:
    """Outbox effect handler: link the to-do, record it in step, cache the alias, and close
    the task when the push found the to-do completed on the platform."""
    channel = _channel_of(kind)
    task_id = int(payload["task_id"])
    if result.external_id:
        conn.execute(sa.text(
            "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
            "VALUES (:s, :o, :x, 'task', :t) ON CONFLICT (system, object, external_id) DO NOTHING"),
            {"s": channel.system, "o": TODO_OBJECT, "x": result.external_id, "t": task_id})
    alias = result.detail.get("recipient_alias")
    if channel.alias_column and isinstance(alias, str) and alias and payload.get("recipient_user_id"):
        conn.execute(sa.text(f"UPDATE internal_user SET {channel.alias_column} = :a WHERE id = :u "
                             f"AND {channel.alias_column} IS NULL"), {"a": alias, "u": payload["recipient_user_id"]})
    state = _todo_state(_push_state(conn, task_id), channel.system)
    state.pop("queued", None)
    state.pop("failed", None)
    state["synced"] = {"version": payload.get("version"), "id": result.external_id or None,
                       "recipient": payload.get("recipient"), "status": result.status,
                       "at": dt.datetime.now(dt.UTC).isoformat()}
    _save_state(conn, task_id, channel.system, state)
    finished = result.detail.get("completed_on_platform")
    if isinstance(finished, Mapping):
        by = _user_by_alias(conn, channel, finished.get("by"))
        at = finished.get("finish_time")
        when = dt.datetime.fromtimestamp(at / 1000, dt.UTC) if isinstance(at, int) else None
        complete_task(conn, task_id, at=when, by_user_id=by, via=channel.system)


def _push_state(conn: Connection, task_id: int) -> Mapping[str, Any]:
    return conn.execute(sa.text("SELECT push_state FROM task WHERE id = :id"), {"id": task_id}).scalar() or {}


def _todo_failed(conn: Connection, kind: str, payload: dict[str, Any], failure: Failure) -> None:
    """Outbox effect handler: the failure on the task; this version is not pushed again."""
    channel = _channel_of(kind)
    task_id = int(payload["task_id"])
    state = _todo_state(_push_state(conn, task_id), channel.system)
    state.pop("queued", None)
    state["failed"] = {"version": payload.get("version"), "status": failure.status,
                       "error": failure.message[:300], "at": dt.datetime.now(dt.UTC).isoformat()}
    _save_state(conn, task_id, channel.system, state)
    if isinstance(failure.error, RecipientError):
        problem = f"{channel.label} does not know the assignee ({payload.get('recipient')}): to-do not created"
    else:
        problem = f"{channel.label} to-do not updated: {failure.message}"
    record_push_problem(conn, payload, problem)


effects.register("todo", effects.EffectHandler(on_done=_todo_pushed, on_failed=_todo_failed))


# ---------------------------------------------------------------------- events


def _finish_time(ms: Any) -> dt.datetime | None:
    """An event's ``finishTime`` (milliseconds) as a time; None when it is none (a bool, text,
    or a number no datetime holds: the task is then closed as of now)."""
    if not isinstance(ms, int) or isinstance(ms, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def record_todo_event(conn: Connection, event: Mapping[str, Any]) -> list[int]:
    """A DingTalk event saying a to-do was completed closes its CRM task (who: the
    operator's unionId, when: its finishTime); returns the tasks it closed. An event for a
    to-do the hub does not know, or for a task closed already, changes nothing.

    The event's name and fields are the sandbox's model (``TODO_EVENT``); DingTalk's
    documentation of to-do events is not in the reference (a GUESS, see
    ``connectors.dingtalk.callbacks``).
    """
    todo_id = str(event.get("taskId") or "").strip()
    if event.get("EventType") != TODO_EVENT or event.get("done") is not True or not todo_id:
        return []
    task_id = task_of_todo(conn, "dingtalk", todo_id)
    if task_id is None:
        return []
    channel = next(c for c in channels() if c.system == "dingtalk")
    when = _finish_time(event.get("finishTime"))
    closed = complete_task(conn, task_id, at=when, by_user_id=_user_by_alias(conn, channel, event.get("operatorUnionId")),
                           via="dingtalk")
    return [task_id] if closed else []


__all__ = ["TodoCounts", "TodoPolicy", "evaluate_todos", "record_todo_event", "source_id"]
