"""Commands an operator runs from a shell (`python -m mediasvc ...`): each opens what it
needs itself (database pool, storage, image workers), runs a flow, and prints for a
terminal: a line per item as it goes and a summary line at the end. `cli` wires their
arguments."""
