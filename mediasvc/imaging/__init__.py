"""Image work that runs in worker processes: pure libvips, no aiohttp, asyncpg or app imports."""

import os

# numpy's OpenBLAS (numpy is loaded for the PDQ hash, `imaging.pdq`) starts a thread per core
# as it is loaded, unless this says otherwise; a worker with a thread before it is confined
# refuses to start (`confine.confine_worker`). Set on the first import of this package, so
# the process that starts workers (the app, the bench) passes it on to them, whatever they
# import first. Workers run one per core and PDQ does no linear algebra: one thread is all.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
