"""After the other tests: every status their apps answered is one the OpenAPI document lists
for that operation (or one its `default` stands for: 500, 503, 507).

It reads what the apps made by the `client` fixture (and `test_openapi_responses`) answered
so far in this session (`answers.SESSION`), so it holds on any selection and order: run
last (the `zz` keeps it last in pytest's file order; a plain `pytest` or `make test`
does), it checks the answers of the whole suite; run alone, it has nothing to check and
says so by skipping. The other
direction, every documented status answered, is `test_openapi_responses`' job.
"""

from __future__ import annotations

import pytest
from answers import SESSION
from contract import Contract
from support import JWT_SECRET, SIGNING_SECRET

from mediasvc.config import Settings
from mediasvc.kinds import kind_rules
from mediasvc.web.openapi import DEFAULT_STATUSES, build_document


def test_every_status_the_suite_saw_is_documented() -> None:
    """No test made the app answer an operation with a status its document omits."""
    if not SESSION:
        pytest.skip("no app answered in this session: run it after the tests that call one")
    # The statuses an operation documents do not depend on the settings.
    settings = Settings(
        database_url="postgresql://unused/unused",
        url_signing_secret=SIGNING_SECRET,
        jwt_secret=JWT_SECRET,
    )
    documented = Contract(build_document(settings, kind_rules(settings))).documented()
    undocumented = sorted(
        (method, path, status)
        for method, path, status in SESSION
        if method != "HEAD"  # aiohttp's for every GET; the document says so once
        and status not in DEFAULT_STATUSES
        and (method, path, status) not in documented
    )
    assert not undocumented, f"document in mediasvc/web/openapi.py: {undocumented}"
