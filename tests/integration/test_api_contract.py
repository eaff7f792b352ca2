"""The OpenAPI document tells the truth: schemathesis against the promoted service's /docs.json.

Every generated request (valid and invalid bodies, every operation) is sent to the real service
and every answer is checked against the document with all of schemathesis' checks but those
listed in IGNORED (behaviour the kit has on purpose). Each answer is counted (not only the first
failure per operation, as `st run` does): the figures go to test-output/reliability/fuzz.json.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import requests

from tests.helpers import OUTPUT_ROOT, Promoted

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import CHECKS, load_all_checks  # noqa: E402
from schemathesis.core.failures import AcceptedNegativeData  # noqa: E402

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these

MAX_EXAMPLES = 300  # per operation and mode: about 1,100 cases with 6 operations, ~1 min here
BUDGET_S = 240  # the whole run, on a slow shared machine
MIN_CASES = 1000
# The one check left out: max_response_time (nothing here asserts on speed: the machine is
# shared). positive_data_acceptance stays in, although a request valid by the JSON Schema may
# get a 422 on purpose (NaN, infinity, a number that overflows a float: the record model's own
# checks): schemathesis never generated one of those here (NOTES-reliability.md).
IGNORED = {"max_response_time"}
VALID_RECORD = {"island": "Biscoe", "bill_length_mm": 45.0, "sex": None}


def _body_validators(document: dict[str, Any]) -> dict[str, Any]:
    """Per operation ("POST /predict"), a JSON Schema validator of its request body, straight
    from the document: the judge of schemathesis' "negative" cases that are valid after all."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    base = "urn:kit-docs"
    registry: Registry[Any] = Registry().with_resource(
        base, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    validators = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "requestBody" not in operation:
                continue
            escaped = path.replace("~", "~0").replace("/", "~1")
            pointer = f"/paths/{escaped}/{method}/requestBody/content/application~1json/schema"
            schema = {"$ref": f"{base}#{pointer}"}
            validators[f"{method.upper()} {path}"] = Draft202012Validator(schema, registry=registry)
    return validators


def _real_failures(failure: BaseException, case: Any, validators: dict[str, Any]) -> list[Any]:
    """The failures of one check run, without schemathesis' known false positive: a
    "schema-violating request accepted" whose body the document accepts (a mutation of one
    anyOf branch into another branch, e.g. null -> number for a nullable number)."""
    failures = list(failure.exceptions) if isinstance(failure, BaseExceptionGroup) else [failure]
    validator = validators.get(case.operation.label)
    return [
        f
        for f in failures
        if not (
            isinstance(f, AcceptedNegativeData)
            and validator is not None
            and validator.is_valid(case.body)
        )
    ]


def _checks() -> list[Any]:
    load_all_checks()
    return [check for check in CHECKS.get_all() if check.__name__ not in IGNORED]


def test_every_answer_matches_the_document(promoted: Promoted) -> None:
    schema = schemathesis.openapi.from_url(f"{promoted.url}/docs.json")
    validators = _body_validators(requests.get(f"{promoted.url}/docs.json", timeout=10).json())
    predict = validators["POST /predict"]  # the judge judges: a valid body passes, a bad one not
    assert predict.is_valid({"records": [VALID_RECORD]})
    assert not predict.is_valid({"records": [{**VALID_RECORD, "bill_length_mm": "long"}]})
    # a body schemathesis 4.32 once sent as "negative" (null -> number in a nullable number);
    # the service rightly answered 200, and the check above failed the whole run
    once_called_negative = {"bill_depth_mm": 0.0, "flipper_length_mm": 0.0, "island": ""}
    assert predict.is_valid({"records": [{**once_called_negative, "bill_length_mm": None}]})
    checks = _checks()
    session = requests.Session()
    figures: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    violations: list[dict[str, Any]] = []
    started = time.monotonic()

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
                continue  # nothing to make invalid in a GET without parameters

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,  # the same cases on every run
                phases=[Phase.explicit, Phase.generate],  # no shrinking: every case counts
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case: Any) -> None:
                if time.monotonic() - started > BUDGET_S:
                    return
                response = case.call(base_url=promoted.url, session=session, timeout=60)
                figures["cases"] += 1
                statuses[str(response.status_code)] += 1
                if response.status_code >= 500:
                    figures["5xx"] += 1
                try:
                    case.validate_response(response, checks=checks)
                # a failed check (or several: FailureGroup is a BaseExceptionGroup): count, go on
                except (Exception, BaseExceptionGroup) as exc:
                    if not _real_failures(exc, case, validators):
                        figures["negative_cases_valid_after_all"] += 1
                        return
                    figures["violations"] += 1
                    if len(violations) < 20:
                        violations.append(
                            {
                                "operation": case.operation.label,
                                "status": response.status_code,
                                "body": response.text[:300],
                                "failure": str(exc)[:600],
                            }
                        )

            send()

    elapsed = time.monotonic() - started
    report = {
        "cases": figures["cases"],
        "5xx": figures["5xx"],
        "violations": figures["violations"],
        "negative_cases_valid_after_all": figures["negative_cases_valid_after_all"],
        "statuses": dict(sorted(statuses.items())),
        "checks": sorted(check.__name__ for check in checks),
        "ignored_checks": sorted(IGNORED),
        "max_examples": MAX_EXAMPLES,
        "seconds": round(elapsed, 1),
        "examples_of_violations": violations,
    }
    folder = OUTPUT_ROOT / "reliability"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fuzz.json").write_text(json.dumps(report, indent=2) + "\n")
    assert figures["cases"] >= MIN_CASES, report
    assert figures["5xx"] == 0, report
    assert figures["violations"] == 0, json.dumps(violations, indent=2)
