"""The local stack: what `make run` and the tests start around the app.

A private PostgreSQL cluster (`pgcluster`), nginx rendered from the project's templates
(`nginxconf`, also used for production sites), child-process helpers (`localproc`), and
`devstack`, which starts all of them in order and stops them cleanly.
"""
