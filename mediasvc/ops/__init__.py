"""Operator commands run from the shell over a whole deployment: `storage copy`, `storage
verify`, `backup`, `restore`.

Each takes plain values (settings, a pool, storage backends) and returns a report the CLI
prints; none imports the web layer. Each is safe to interrupt and to run again.
"""


class OpsError(Exception):
    """A command cannot do what was asked (a backup directory in use, a database that is not
    empty, pg_dump failing); the message is one line saying why."""
