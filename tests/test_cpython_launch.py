"""The copy of CPython's launch code (`imaging.cpython_launch`) against the running Python."""

from __future__ import annotations

import sys
from multiprocessing import resource_tracker
from multiprocessing.popen_spawn_posix import Popen as SpawnPopen

from mediasvc.imaging import cpython_launch


def test_this_python_is_one_the_copy_was_compared_with() -> None:
    """A Python whose version nobody compared the copy with fails here, so an upgrade
    forces a look at popen_spawn_posix.py and resource_tracker.py (module docstring)."""
    version = sys.version_info[:2]
    assert version in cpython_launch.MIRRORED_VERSIONS, (
        f"CPython {version[0]}.{version[1]}: compare mediasvc/imaging/cpython_launch.py with "
        "this version's Lib/multiprocessing/popen_spawn_posix.py (Popen._launch) and "
        "resource_tracker.py (ResourceTracker.ensure_running), then add it to "
        "MIRRORED_VERSIONS"
    )


def test_the_private_names_the_copy_relies_on_still_exist() -> None:
    """The CPython internals the copy reads or overrides are still there, under those names."""
    tracker = resource_tracker._resource_tracker
    for name in ("_lock", "_fd", "_pid", "_check_alive"):
        assert hasattr(tracker, name), name
    assert callable(SpawnPopen._launch)
    assert issubclass(cpython_launch.EnvironmentPopen, SpawnPopen)
