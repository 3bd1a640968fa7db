"""schemathesis against the live app: requests generated from the served OpenAPI document,
each answer checked for a server error (`not_a_server_error`), against the schema
documented for its status (`response_schema_conformance`), and for a status the operation
lists (`status_is_documented`: its `default` stands for 500, 503 and 507 only).

Two runs: every operation on its own, then sequences that follow the document's links
(upload, then read, redirect to a variant, delete; open a session, then complete it), so
the operations on one media are reached with ids that exist, not only with random ones.
Each sequence runs as a new owner with one ready media (uploaded before its first step, so
a listing has an id to follow) and nothing else. Hypothesis expects the same choices to
draw the same way in every sequence that starts with them, and in its replay of a failing
one; an answer that depends on an earlier sequence's media, sessions or idempotency keys
(a key repeated across sequences answers 200, which no link follows, instead of 201)
changes which steps can come next, and Hypothesis reports that as inconsistent data.

Bounded so both stay well under the per-test timeout on two cores: `EXAMPLES` cases per
operation and `SEQUENCES` sequences of at most `STEPS` calls, derandomized (the same cases
every run, so a red run is reproducible rather than one seed's luck), no shrinking (a
failure is reported as found, with the curl command that reproduces it). The app runs on
the test's event loop; schemathesis's `requests` calls run in a worker thread so that loop
stays free to answer them.

Its configuration is given, not discovered: no request cache, and reports (if any) in the
test's temporary directory, so a run leaves nothing in the checkout (schemathesis keeps
both under `./.schemathesis/` by default).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from pathlib import Path
from typing import Any

import hypothesis
import images
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance
from support import Client, bearer

from mediasvc.web.openapi import DEFAULT_STATUSES

EXAMPLES = 25
SEQUENCES = 15
STEPS = 8


@schemathesis.check
def status_is_documented(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """The status is one the operation lists, not one only its `default` would cover."""
    listed = {int(s) for s in case.operation.definition.raw["responses"] if s != "default"}
    if response.status_code not in listed | DEFAULT_STATUSES:
        raise AssertionError(
            f"{response.status_code} is not documented for {case.operation.label} "
            f"(it lists {sorted(listed)}): {response.text[:300]}"
        )
    return True


CHECKS = [not_a_server_error, response_schema_conformance, status_is_documented]


def bounded(examples: int, *, derandomize: bool = True) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
        print_blob=False,
    )


class Run:
    """One schemathesis run against `base_url`: what it sent and what failed."""

    def __init__(
        self, document: dict[str, Any], base_url: str, examples: int, scratch: Path
    ) -> None:
        config = SchemathesisConfig.from_dict(
            {"cache": {"enabled": False}, "reports": {"directory": str(scratch)}}
        )
        self.schema = schemathesis.openapi.from_dict(document, config=config)
        self.base_url = base_url
        self.examples = examples
        self.derandomize = True
        # Whose token the calls carry: `alice` for single calls, a new owner per sequence.
        self.owner = "alice"
        self.owners = (f"sequence-{n}" for n in itertools.count())
        self.answered: collections.Counter[tuple[str, int]] = collections.Counter()
        self.failures: list[str] = []

    def call(self, case: schemathesis.Case) -> schemathesis.Response:
        response = case.call(base_url=self.base_url, headers=bearer(self.owner), timeout=60)
        self.answered[case.operation.label, response.status_code] += 1
        return response

    def upload(self, photo: bytes) -> None:
        """One ready media for the current owner, sent outside the generated requests."""
        response = requests.post(
            f"{self.base_url}/v1/media",
            headers=bearer(self.owner),
            files={"file": ("photo.jpg", photo, "image/jpeg")},
            timeout=60,
        )
        assert response.status_code == 201, response.text

    def each_operation(self) -> None:
        """`examples` cases of every operation, each on its own."""
        for result in self.schema.get_all_operations():
            operation = result.ok()

            @bounded(self.examples, derandomize=self.derandomize)
            @hypothesis.given(case=operation.as_strategy())
            def check(case: schemathesis.Case) -> None:
                case.validate_response(self.call(case), checks=CHECKS)

            self.collect(operation.label, check)

    def linked_sequences(self) -> None:
        """Sequences of calls that pass ids along the document's links."""
        run = self
        photo = images.make_jpeg(width=64, height=48)

        class Machine(self.schema.as_state_machine()):  # type: ignore[misc]
            def setup(self) -> None:
                # Once per sequence, replays included: each starts from the same state, a
                # new owner with one ready media (so a listing has an id to follow).
                run.owner = next(run.owners)
                run.upload(photo)

            def call(self, case: schemathesis.Case, **kwargs: Any) -> schemathesis.Response:
                return run.call(case)

            def validate_response(
                self, response: schemathesis.Response, case: schemathesis.Case, **kwargs: Any
            ) -> None:
                try:
                    case.validate_response(response, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as exc:
                    # Kept as it happened: Hypothesis' replay of a stateful failure can end
                    # in a report about the replay itself, hiding the first failure.
                    run.failures.append(f"{case.operation.label}: {exc}")
                    raise

        self.collect("linked sequences", lambda: Machine.run(settings=bounded(SEQUENCES)))

    def collect(self, label: str, test: Any) -> None:
        try:
            test()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is the latter
            self.failures.append(f"{label}: {exc}")


async def served(client: Client, scratch: Path, examples: int = EXAMPLES) -> Run:
    response = await client.get("/v1/openapi.json")
    return Run(await response.json(), str(client.make_url("/")).rstrip("/"), examples, scratch)


async def test_every_operation_conforms_and_never_fails_on_the_server(
    client: Client, tmp_path: Path
) -> None:
    """No generated request gets a 5xx or an undocumented status, and every answer
    matches its documented schema."""
    run = await served(client, tmp_path)
    await asyncio.to_thread(run.each_operation)
    assert not run.failures, "\n\n".join(run.failures)
    operations = {label for label, _ in run.answered}
    assert len(operations) == len(list(run.schema.get_all_operations()))
    # Generation reaches past the first refusal: uploads and sessions are made.
    assert run.answered["POST /v1/media", 201] > 0
    assert run.answered["POST /v1/uploads", 201] > 0


async def test_linked_sequences_conform_and_never_fail_on_the_server(
    client: Client, tmp_path: Path
) -> None:
    """Following the links (an upload's id to read, redirect and delete; a session's id to
    complete) gives no 5xx, no undocumented status, and answers that match the schemas."""
    run = await served(client, tmp_path)
    await asyncio.to_thread(run.linked_sequences)
    assert not run.failures, "\n\n".join(run.failures)
    # Some step used an id that exists. Which one depends on the derandomised draws (seeded
    # from this module's source), so any of the answers only an existing media gets counts.
    found_an_existing_media = {
        ("GET /v1/media/{media_id}", 200),
        ("GET /v1/media/{media_id}/{variant}", 302),
        ("DELETE /v1/media/{media_id}", 204),
    }
    assert found_an_existing_media & set(run.answered)
