"""Commands an operator runs from a shell over a whole deployment (`python -m mediasvc
...`: `rerender`, `usage`, `storage copy`, `storage verify`, `backup`, `restore`): each
opens what it needs itself (database pool, storage, image workers), runs its flow, and
prints for a terminal: progress as it goes and a summary line at the end. None imports
the web layer; each is safe to interrupt and to run again. `cli` wires their arguments.
"""


class OpsError(Exception):
    """A command cannot do what was asked (a backup directory in use, a database that is not
    empty, pg_dump failing); the message is one line saying why."""
