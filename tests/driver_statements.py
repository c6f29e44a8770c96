"""What the database driver itself is sent, not only what goes through Django.

The remembered-decision read (media_access/decisions.py) uses the driver's
own cursor on SQLite and PostgreSQL, so Django's CaptureQueriesContext does
not see it; counting at the driver counts every statement.
"""

from contextlib import contextmanager


@contextmanager
def driver_statements(connection):
    """Yields a list that collects the SQL of every statement sent on
    ``connection`` (SQLite: its trace callback, comments left out) or, on
    PostgreSQL, on any psycopg connection of this process, meanwhile."""
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

    psycopg.Cursor.execute = recording
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = execute
