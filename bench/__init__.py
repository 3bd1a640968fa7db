"""`make bench`: the service against its own bare pipeline, the floor, and Pillow.

Run as `python -m bench` (see `bench.__main__` for the options). Every number comes from one
run on one machine: inputs are generated in code (`bench.inputs`), single-process contestants
run interleaved round by round in their own worker processes (`bench.isolated`), and the
whole stack is started the way `make run` starts it (`bench.service`).
"""
