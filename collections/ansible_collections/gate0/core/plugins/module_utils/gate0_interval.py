"""The clone stayed quiet over an interval, not only at an instant: pg_stat_database.sessions.

An app whose pool closes idle connections (Directus with DB_POOL__MIN=0) is invisible to a look at
pg_stat_activity between two of its visits; PostgreSQL 14+ counts every session ever established to a
database (`pg_stat_database.sessions`, until `stats_reset`). gate0 reads that counter on each of its
own connections to the clone, and keeps the last reading as an *anchor* (the gate's result and
receipt, the `gate0_sessions` fact): the next gate0 connection must find it exactly one higher per
session gate0 itself opened in between - any more is somebody else's session, a reset or a lower
count is "cannot prove", never a pass.

One rule (`interval_problem`), applied by the module that makes the next connection (`clone_sql`
before a mutation) and by the clone judge (the gate, the consumers' re-check, the exit).
"""

from __future__ import annotations

import time
from typing import Any

ANCHOR_KEYS = ("database", "database_oid", "sessions", "stats_reset", "own_after", "at", "by")


def settle_own_session(conn: Any) -> None:
    """Make sure our own session is already in pg_stat_database.sessions before reading it.

    A backend counts its session when it first goes idle, before the client hears ReadyForQuery, but
    without waiting for a lock on the statistics; pg_stat_force_next_flush() (PostgreSQL 15+) makes
    the flush at the end of this statement wait for it. On 14 (the statistics collector) the counter
    is read from a file at most 500 ms old: wait that long once, so ours is in it.
    Leaves the connection in autocommit (no transaction open).
    """
    conn.autocommit = True
    with conn.cursor() as cur:
        if conn.server_version >= 150000:
            cur.execute("SELECT pg_stat_force_next_flush()")
        else:
            time.sleep(0.6)


def sessions_established(cur: Any) -> dict[str, Any]:
    """pg_stat_database.sessions of this database now (sessions ever established, ours included)."""
    cur.execute("SELECT pg_stat_clear_snapshot()")
    cur.execute("SELECT sessions, "
                "to_char(stats_reset AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                "FROM pg_stat_database WHERE datname = current_database()")
    row = cur.fetchone()
    return {"sessions": None if row is None or row[0] is None else int(row[0]),
            "stats_reset": None if row is None else row[1]}


def anchor(identity: dict[str, Any] | None, reading: dict[str, Any] | None, own_after: int, at: str,
           by: str) -> dict[str, Any] | None:
    """The reading kept for the next gate0 connection: `own_after` sessions gate0 opened after it."""
    if not isinstance(reading, dict) or reading.get("sessions") is None or not isinstance(identity, dict):
        return None
    return {"database": identity.get("database"), "database_oid": identity.get("database_oid"),
            "system_identifier": identity.get("system_identifier"),
            "sessions": int(reading["sessions"]), "stats_reset": reading.get("stats_reset"),
            "own_after": int(own_after), "at": at, "by": by}


def same_clone(anchor_: dict[str, Any] | None, identity: dict[str, Any] | None) -> bool:
    """The anchor was read on this very database: same name and oid (not a clone recreated since) and,
    when both know it, the same server (system identifier: not a cluster initialised again)."""
    if not isinstance(anchor_, dict) or not isinstance(identity, dict):
        return False
    mine, theirs = anchor_.get("system_identifier"), identity.get("system_identifier")
    return (anchor_.get("database") == identity.get("database")
            and anchor_.get("database_oid") is not None
            and str(anchor_.get("database_oid")) == str(identity.get("database_oid"))
            and (mine is None or theirs is None or str(mine) == str(theirs)))


def was_reset(anchor_: dict[str, Any], reading: dict[str, Any] | None) -> bool:
    """The counter cannot be compared: statistics reset (or lost in a crash) since the anchor."""
    if not isinstance(reading, dict) or reading.get("sessions") is None or anchor_.get("sessions") is None:
        return False
    return (reading.get("stats_reset") != anchor_.get("stats_reset")
            or int(reading["sessions"]) < int(anchor_["sessions"]))


def interval_problem(anchor_: dict[str, Any] | None, reading: dict[str, Any] | None,
                     own: int = 1) -> str | None:
    """Why the counter now does not prove that nobody but gate0 connected since the anchor.

    `reading` is taken on gate0's own connection after settle_own_session: `own` sessions (that one,
    and any other gate0 opened since the anchor beyond the anchor's `own_after`) are gate0's.
    """
    if not isinstance(anchor_, dict) or anchor_.get("sessions") is None:
        return "cannot prove the clone stayed quiet: no earlier session counter to compare with"
    since = f"since {anchor_.get('by') or 'gate0'} at {anchor_.get('at')}"
    if not isinstance(reading, dict) or reading.get("sessions") is None:
        return f"cannot prove the clone stayed quiet {since}: pg_stat_database.sessions not read"
    before, now = int(anchor_["sessions"]), int(reading["sessions"])
    counts = f"pg_stat_database.sessions {before} -> {now}"
    if was_reset(anchor_, reading):
        return (f"cannot prove the clone stayed quiet {since}: its statistics were reset "
                f"(stats_reset {anchor_.get('stats_reset')} -> {reading.get('stats_reset')}, {counts})")
    ours = int(anchor_.get("own_after") or 0) + own
    others = now - before - ours
    if others > 0:
        return (f"{others} session(s) established on the clone {since} besides gate0's own "
                f"({counts}, {ours} of them gate0's): an app may have used the clone in between")
    if others < 0:
        return (f"cannot prove the clone stayed quiet {since}: fewer sessions than gate0 opened itself "
                f"({counts}, {ours} expected)")
    return None
