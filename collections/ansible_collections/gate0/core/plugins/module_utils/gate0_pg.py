"""Shared PostgreSQL code for gate0's modules: connection options, sessions, guards, errors.

Helpers return values or raise GateError with a one-line reason; only a module's main() turns that
into fail_json. Connection options live here once (argument spec) and once in the doc fragment
`gate0_pg` (plugins/doc_fragments/gate0_pg.py); a module adds only its own options.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any

try:
    import psycopg2
    import psycopg2.extensions
    from psycopg2 import sql

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - exercised on hosts without psycopg2
    psycopg2 = None
    sql = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = str(exc)

APPLICATION_NAME = "gate0"
# One line, naming the interpreter that lacks it (the database host's, when run over SSH).
PSYCOPG2_HINT = (
    f"psycopg2 is required on the host that runs this module (Python {sys.executable}): install the "
    "OS package python3-psycopg2 (Debian/Ubuntu/RHEL; the role does with gate0_install_psycopg2: true) "
    "or pip install psycopg2-binary"
)

# Settings pinned in every gate0 transaction so that text output (and so content hashes) does not
# depend on the server's or the role's defaults. Read back after SET LOCAL: a pooler may drop them.
PINNED_SETTINGS: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "row_security": "off",
    "application_name": APPLICATION_NAME,
}


class GateError(Exception):
    """A failure with a one-line reason that names what was being done."""


def pg_argument_spec() -> dict[str, Any]:
    """Connection and session options shared by every gate0 module (see doc fragment gate0_pg)."""
    return {
        "login_host": {"type": "str", "default": ""},
        "login_port": {"type": "int", "default": 5432},
        "login_user": {"type": "str", "required": True},
        "login_password": {"type": "str", "no_log": True},
        "login_db": {"type": "str", "required": True},
        "login_unix_socket": {"type": "str", "default": ""},
        "ssl_mode": {
            "type": "str",
            "default": "prefer",
            "choices": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
        },
        "ca_cert": {"type": "str"},
        "connect_timeout": {"type": "int", "default": 5},
        "statement_timeout": {"type": "int", "default": 5000},
        "lock_timeout": {"type": "int", "default": 1000},
        # PostgreSQL in a container on the host running the module: its address, by `docker inspect`.
        "login_container": {"type": "str", "default": ""},
        "login_container_network": {"type": "str", "default": ""},
        "container_cli": {"type": "str", "default": "docker"},
    }


def clone_name_argument_spec() -> dict[str, Any]:
    """Options of the clone naming rule (doc fragment gate0_pg.clone_name); the prefix is per module."""
    return {
        "production_databases": {"type": "list", "elements": "str", "default": []},
        "clone_name_prefix_min_length": {"type": "int", "default": 1},
        "clone_name_suffix_regex": {"type": "str", "default": ""},
    }


def check_timeouts(params: dict[str, Any]) -> None:
    """Refuse zero or negative timeouts: 0 means 'no timeout' to PostgreSQL, never wanted here."""
    for key in ("connect_timeout", "statement_timeout", "lock_timeout"):
        value = params.get(key)
        if value is None or int(value) <= 0:
            raise GateError(f"checking options: {key} must be a positive number, got {value!r}")


def one_line(exc: BaseException) -> str:
    """The first meaningful line of a driver error, without severity prefixes or trailing blanks."""
    text = str(getattr(exc, "pgerror", None) or exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return exc.__class__.__name__
    # libpq nests the server's message: 'connection to server ... failed: FATAL:  password ...'.
    first = re.sub(r"(^|: )(FATAL|ERROR|WARNING):\s+", r"\1", lines[0])
    for extra in lines[1:]:
        if extra.startswith("DETAIL:"):
            first += f" ({extra[len('DETAIL:'):].strip()})"
            break
    return first


def login_host(params: dict[str, Any]) -> str | None:
    """The server to connect to: the socket directory, the container's address, or login_host.

    With login_container set, the container's address on its network is resolved on the host that
    runs the module (`docker inspect`); a missing or stopped container raises GateError naming it.
    """
    if params.get("login_unix_socket"):
        return params["login_unix_socket"]
    if params.get("login_container"):
        from ansible_collections.gate0.core.plugins.module_utils.gate0_container import resolve_address
        return resolve_address(params["login_container"], params.get("login_container_network") or "",
                               params.get("container_cli") or "docker")
    return params.get("login_host") or None


def connect(params: dict[str, Any]) -> Any:
    """Open one connection with the shared options; raise GateError naming the server on failure."""
    host = login_host(params)
    kwargs: dict[str, Any] = {
        "host": host,
        "port": params.get("login_port"),
        "user": params.get("login_user"),
        "dbname": params.get("login_db"),
        "sslmode": params.get("ssl_mode") or "prefer",
        "connect_timeout": params.get("connect_timeout") or 5,
        "application_name": APPLICATION_NAME,
        # Detect a dead server or a cut network instead of hanging on a half-open socket.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
    }
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    if params.get("ca_cert"):
        kwargs["sslrootcert"] = params["ca_cert"]
    where = (f"{params.get('login_user')}@{host or 'localhost'}:{params.get('login_port')}"
             f"/{params.get('login_db')}")
    if params.get("login_container") and not params.get("login_unix_socket"):
        where += f" (container {params['login_container']!r})"
    try:
        conn = psycopg2.connect(**{k: v for k, v in kwargs.items() if v is not None})
    except psycopg2.Error as exc:
        raise GateError(f"connecting to {where}: {one_line(exc)}") from None
    return conn


def begin(conn: Any, params: dict[str, Any], read_only: bool = True,
          isolation: str = "REPEATABLE READ", snapshot: str | None = None) -> dict[str, str]:
    """Start the gate's transaction, SET LOCAL the timeouts and pinned formats, and read them back.

    `snapshot`: a snapshot another transaction exported (pg_export_snapshot()), imported first,
    before any query (SET TRANSACTION SNAPSHOT allows nothing before it): this transaction then sees
    exactly what the exporter sees. Returns the settings as the server reports them; raises GateError
    if any did not take.
    """
    mode = "READ ONLY" if read_only else "READ WRITE"
    if isolation not in ("REPEATABLE READ", "READ COMMITTED", "SERIALIZABLE"):
        raise GateError(f"starting the transaction: unsupported isolation {isolation!r}")
    wanted = dict(PINNED_SETTINGS)
    wanted["statement_timeout"] = f"{int(params['statement_timeout'])}ms"
    wanted["lock_timeout"] = f"{int(params['lock_timeout'])}ms"
    wanted["idle_in_transaction_session_timeout"] = f"{idle_timeout_ms(params)}ms"
    conn.autocommit = True
    cur = conn.cursor()
    try:
        cur.execute(f"BEGIN ISOLATION LEVEL {isolation} {mode}")
        if snapshot is not None:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        for name, value in wanted.items():
            cur.execute("SELECT set_config(%s, %s, true)", (name, value))
        cur.execute(
            "SELECT current_setting('transaction_read_only'), current_setting('transaction_isolation'), "
            "current_setting('statement_timeout'), current_setting('lock_timeout'), "
            "current_setting('TimeZone'), current_setting('DateStyle'), "
            "current_setting('IntervalStyle'), current_setting('extra_float_digits'), "
            "current_setting('bytea_output'), current_setting('row_security'), "
            "current_setting('application_name'), current_setting('idle_in_transaction_session_timeout')"
        )
        row = cur.fetchone()
    except psycopg2.Error as exc:
        raise GateError(f"starting the {mode.lower()} transaction: {one_line(exc)}") from None
    finally:
        cur.close()
    got = dict(zip(
        ["transaction_read_only", "transaction_isolation", "statement_timeout", "lock_timeout", "TimeZone",
         "DateStyle", "IntervalStyle", "extra_float_digits", "bytea_output", "row_security",
         "application_name", "idle_in_transaction_session_timeout"], row, strict=True))
    expect = {
        "transaction_read_only": "on" if read_only else "off",
        "transaction_isolation": isolation.lower(),
        "statement_timeout": _norm_ms(wanted["statement_timeout"]),
        "lock_timeout": _norm_ms(wanted["lock_timeout"]),
        "idle_in_transaction_session_timeout": _norm_ms(wanted["idle_in_transaction_session_timeout"]),
        **{k: v for k, v in PINNED_SETTINGS.items()},
    }
    got_cmp = dict(got)
    for key in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
        got_cmp[key] = _norm_ms(got[key])
    bad = [f"{k}={got_cmp[k]!r} (wanted {v!r})" for k, v in expect.items() if str(got_cmp[k]) != str(v)]
    if bad:
        raise GateError("starting the transaction: the server did not apply " + ", ".join(bad))
    return got


# A gate stalled inside its transaction (the module stopped, its host frozen) must not hold a snapshot
# on production: the server ends the session once it is idle in the transaction this long - more than
# any statement or lock wait of ours, since gate0 itself never idles between its statements.
IDLE_MARGIN_MS = 1000


def idle_timeout_ms(params: dict[str, Any]) -> int:
    """idle_in_transaction_session_timeout for the gate's transactions, in milliseconds."""
    return max(int(params["statement_timeout"]), int(params["lock_timeout"])) + IDLE_MARGIN_MS


_UNITS_MS = {"ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}


def _norm_ms(value: str) -> str:
    """'5s', '5000ms' and '5000' -> '5000' (milliseconds), for comparing timeout settings."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|min|h|d)?\s*", str(value))
    if not m:
        return str(value)
    return str(int(m.group(1)) * _UNITS_MS[m.group(2) or "ms"])


def xid_assigned(cur: Any) -> Any:
    """The transaction id if this transaction has written anything (None when it has not)."""
    cur.execute("SELECT pg_current_xact_id_if_assigned()::text")
    return cur.fetchone()[0]


def rollback(conn: Any) -> None:
    """End the current transaction with an explicit ROLLBACK and confirm the session is idle.

    begin() runs the connection in autocommit mode with its own BEGIN, so psycopg2's conn.rollback()
    would be a no-op there: always send ROLLBACK. Raises GateError when the server does not confirm.
    """
    try:
        with conn.cursor() as cur:
            cur.execute("ROLLBACK")
    except psycopg2.Error as exc:
        raise GateError(f"rolling back: {one_line(exc)}") from None
    if conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        raise GateError("rolling back: the session is still inside a transaction")


def rollback_quietly(conn: Any) -> None:
    """End the transaction with ROLLBACK and close; never raise (the connection may be dead)."""
    try:
        rollback(conn)
    except Exception:  # noqa: S110 - best effort on a possibly broken connection
        pass
    try:
        conn.close()
    except Exception:  # noqa: S110
        pass


def server_identity(cur: Any) -> dict[str, Any]:
    """Who answered: database name and oid, server address and port, version, system identifier."""
    cur.execute(
        "SELECT current_database(), d.oid::bigint, host(inet_server_addr()), inet_server_port(), "
        "current_setting('server_version'), current_setting('server_version_num')::int, "
        "has_function_privilege('pg_control_system()', 'EXECUTE') "
        "FROM pg_database AS d WHERE d.datname = current_database()"
    )
    db, oid, addr, port, version, version_num, can_ctl = cur.fetchone()
    system_identifier = None
    if can_ctl:
        cur.execute("SELECT system_identifier::text FROM pg_control_system()")
        system_identifier = cur.fetchone()[0]
    return {
        "database": db,
        "database_oid": oid,
        "address": addr,
        "port": port,
        "version": version,
        "version_num": version_num,
        "system_identifier": system_identifier,
    }


def clone_guard(cur: Any, clone_database: str, clone_prefix: str) -> None:
    """Server-side guard, in the caller's transaction: abort unless this is the named clone.

    Raises GateError (and the server aborts the transaction) when current_database() is not exactly
    `clone_database`, or does not start with `clone_prefix`, or the two disagree.
    """
    cur.execute("SELECT set_config('gate0.guard_db', %s, true), set_config('gate0.guard_prefix', %s, true)",
                (clone_database, clone_prefix))
    try:
        cur.execute(
            """
            DO $guard$
            BEGIN
                IF current_database() <> current_setting('gate0.guard_db')
                   OR current_setting('gate0.guard_prefix') = ''
                   OR left(current_database(), length(current_setting('gate0.guard_prefix')))
                      <> current_setting('gate0.guard_prefix') THEN
                    RAISE EXCEPTION 'gate0 guard: current_database() % is not the clone %',
                        current_database(), current_setting('gate0.guard_db');
                END IF;
            END
            $guard$
            """
        )
    except psycopg2.Error as exc:
        raise GateError(f"guarding the clone transaction: {one_line(exc)}") from None


# PostgreSQL keeps the first NAMEDATALEN-1 bytes of an identifier and silently drops the rest.
MAX_IDENTIFIER_BYTES = 63


def check_identifier(name: str) -> str:
    """Refuse what quoting cannot carry faithfully: empty, NUL (libpq cuts the name there, so a
    different relation would be read) and names longer than PostgreSQL keeps (truncated silently)."""
    if not isinstance(name, str) or not name:
        raise GateError(f"checking options: identifier {name!r} is empty or not a string")
    if "\x00" in name:
        raise GateError(f"checking options: identifier {name!r} contains a NUL character")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_IDENTIFIER_BYTES:
        raise GateError(f"checking options: identifier {name!r} is longer than "
                        f"{MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)")
    return name


CLONE_NAME_WILDCARDS = ("%", "*", "?", "[")


def clone_name_refusal(clone_db: str, prefix: str, production: list[str], min_length: int = 1,
                       suffix_regex: str = "") -> str | None:
    """Why the clone channel must not even connect to `clone_db` (None when it may).

    The prefix is literal (`_` and `%` are plain characters); a prefix holding a pattern character,
    a prefix that also matches a production name, and a name that is only the prefix are refused.
    """
    if not clone_db:
        return "the clone database name is empty"
    if not prefix:
        return "the clone name prefix is empty"
    if len(prefix) < min_length:
        return f"the clone name prefix {prefix!r} is shorter than {min_length} characters"
    bad = [c for c in CLONE_NAME_WILDCARDS if c in prefix]
    if bad:
        return f"the clone name prefix {prefix!r} contains {bad[0]!r}: give the literal prefix, not a pattern"
    if clone_db in production:
        return f"the clone database {clone_db!r} is a production database name"
    caught = [p for p in production if p.startswith(prefix)]
    if caught:
        return f"the clone name prefix {prefix!r} also matches production database {caught[0]!r}"
    if not clone_db.startswith(prefix) or len(clone_db) <= len(prefix):
        return (f"the clone database {clone_db!r} does not start with the prefix {prefix!r} "
                "followed by a suffix")
    try:
        if suffix_regex and re.fullmatch(suffix_regex, clone_db[len(prefix):]) is None:
            return f"the suffix of the clone database {clone_db!r} does not match {suffix_regex!r}"
    except re.error as exc:
        return f"the clone name suffix regex {suffix_regex!r} is invalid: {exc}"
    return None


def ident(*names: str) -> Any:
    """A quoted (possibly schema-qualified) identifier: 'public.t' -> "public"."t".

    Raises GateError for a part that quoting cannot carry faithfully (see check_identifier).
    """
    return sql.Identifier(*(check_identifier(n) for n in names))


# What may not appear in SQL text taken from vars (a target's `where` or `sql`): a statement
# separator (the simple query protocol would run a second statement, e.g. COMMIT; then a write outside
# our READ ONLY transaction), comment markers (they would cut off the rest of the statement gate0 wraps
# around the text: its LIMIT, its closing parenthesis) and NUL (libpq would cut the text there).
SQL_TEXT_REFUSED = {";": "a semicolon", "--": "a comment marker", "/*": "a comment marker",
                    "\x00": "a NUL character"}


def check_sql_text(what: str, text: Any) -> str:
    """Refuse SQL text from vars that could be more than one statement or cut gate0's own SQL."""
    if not isinstance(text, str) or not text.strip():
        raise GateError(f"checking options: {what} must be non-empty SQL text, got {text!r}")
    for token, label in SQL_TEXT_REFUSED.items():
        if token in text:
            raise GateError(f"checking options: {what} contains {label} ({token!r}), refused: "
                            f"it must be a single expression or statement, got {text!r}")
    return text


def split_relation(name: str) -> tuple[str, ...]:
    """'schema.table' -> ('schema', 'table'); 'table' -> ('table',). Refuses anything else."""
    if not isinstance(name, str):
        raise GateError(f"checking options: relation name {name!r} is not a string")
    if "\x00" in name:  # first: the cause that matters, whatever else is wrong with the name
        raise GateError(f"checking options: relation name {name!r} contains a NUL character")
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise GateError(f"checking options: relation name {name!r} is not 'table' or 'schema.table'")
    for part in parts:
        check_identifier(part)
    return tuple(parts)


def elapsed_ms(start: float) -> int:
    return int((time.monotonic() - start) * 1000)
