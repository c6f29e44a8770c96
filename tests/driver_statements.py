"""What the database driver itself is sent, not only what goes through Django.

The remembered-decision read (media_access/decisions.py) uses the driver's
own cursor on SQLite and, on PostgreSQL, libpq through psycopg's ``pgconn``
(``decisions._exec_scope_read``), so Django's CaptureQueriesContext does
not see it; counting at the driver counts every statement.
"""

from contextlib import contextmanager


@contextmanager
def driver_statements(connection):
    """Yields a list that collects the SQL of every statement sent on
    ``connection`` (SQLite: its trace callback, comments left out) or, on
    PostgreSQL, on any psycopg connection of this process, meanwhile: every
    cursor execute, and every EXECUTE of the prepared scope read (its SQL)."""
    seen = []
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        connection.connection.set_trace_callback(lambda sql: None if sql.startswith("--") else seen.append(sql))
        try:
            yield seen
        finally:
            connection.connection.set_trace_callback(None)
        return
    import psycopg

    execute = psycopg.Cursor.execute

    def recording(cursor, query, params=None, **kwargs):
        seen.append(str(query))
        return execute(cursor, query, params, **kwargs)

    from media_access import decisions

    exec_scope_read = decisions._exec_scope_read

    def recording_scope_read(raw, keys):
        seen.append(decisions._union_query(len(keys)))
        return exec_scope_read(raw, keys)

    psycopg.Cursor.execute = recording
    decisions._exec_scope_read = recording_scope_read
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = execute
        decisions._exec_scope_read = exec_scope_read
