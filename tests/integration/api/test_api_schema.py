"""Schemathesis against /openapi.json: no 500 for any generated request, and every response matches the schema.

Every operation gets a bounded number of generated cases (valid and invalid ones), sent with a token of a tenant of
its own; each response is checked by schemathesis (no server error, a documented status, content type and headers,
a body that matches the schema). schemathesis's pytest plugin is not used (it does not load under this pytest), so
the operations are walked here with a Hypothesis test each.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

pytestmark = [pytest.mark.redis, pytest.mark.sandbox, pytest.mark.onnx, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 15

CONTENT_DEPENDENT = [positive_data_acceptance]
"""Not run: it expects every schema-valid request to succeed, but an upload's type is in its bytes (415), a
cursor's meaning in its content (400) and a job id's existence in the store (404), which no schema can say."""


def test_no_generated_request_gets_a_500_or_an_answer_outside_the_schema(stack):
    headers = {"Authorization": f"Bearer {stack.token('fuzz')}"}
    # Generated uploads are checked at the door; a few become jobs, the rest get 429 (documented) and cost nothing.
    assert stack.textlayer("tokens", "limits", "--tenant", "fuzz", "--uploads-per-minute", "3").returncode == 0
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case) -> None:
                case.call_and_validate(base_url=stack.url, headers=headers, excluded_checks=CONTENT_DEPENDENT)

            try:
                check()
            except Unsatisfiable:
                if mode == GenerationMode.POSITIVE:
                    raise
                # An operation without parameters or body has no invalid request to make.
