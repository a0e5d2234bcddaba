"""Property-based fuzzing of every operation in /api/schema/: whatever a staff client sends, no 5xx, and
every answer is what the schema says it is.

Schemathesis reads the live schema, so each new API joins this test by existing. It runs through Django's
WSGI application inside the test's transaction, on the catalog seed, with a staff token. The checks: no
server error; each answer's status, body, content type and headers as documented (every operation
documents its error answers in the one error shape: inventiv/api_schema.py); an unsupported method answered
405 with `Allow`; a missing required header refused. Left out, because they test a different contract than
the API's: `positive_data_acceptance` (a request valid by the schema may still name a code that does not
exist: 400 is right), `negative_data_rejection` (an empty optional query parameter is taken as absent),
`ignored_auth` (the API takes a session or a token: spoiling one while the other is valid still passes,
as it should).
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from knox.models import AuthToken
from schemathesis.checks import (
    content_type_conformance,
    missing_required_header,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from autoscaling.models import Pool
from autoscaling.tests.factories import make_pool
from catalog.models import InstanceType, LlmModel, Provider, Region, RuntimeSetting, Zone
from inventiv.wsgi import application
from monitoring.models import ActionType

# Fuzzed examples per operation (the coverage phase adds its own boundary cases): enough to reach the
# validation paths, few enough that every operation together stays well under a minute on two cores.
MAX_EXAMPLES = 15
# Every operation runs inside this one test, which took 80 s on a loaded two-core machine: the suite's
# per-test ceiling (pytest.ini) is raised for it.
FUZZ_TIMEOUT_S = 600

pytestmark = pytest.mark.timeout(FUZZ_TIMEOUT_S)

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance,
          response_headers_conformance, unsupported_method, missing_required_header]

# Random codes only ever find 404s. Half the generated paths name a seeded row instead, so writes reach the
# serializers and services. Keyed by the collection segment of the path (/api/<collection>/{code}/...).
KNOWN_ROWS = {
    "providers": (Provider, "code"),
    "regions": (Region, "code"),
    "zones": (Zone, "code"),
    "instance-types": (InstanceType, "code"),
    "models": (LlmModel, "code"),
    "settings": (RuntimeSetting, "key"),
    "action-types": (ActionType, "code"),
    "pools": (Pool, "name"),
}


def known_codes() -> dict[str, list[str]]:
    return {
        collection: sorted(set(model.objects.values_list(field, flat=True)))
        for collection, (model, field) in KNOWN_ROWS.items()
    }


@pytest.fixture
def api_schema(request, seed, admin_user):
    # schemathesis 4.32 renames the running test through `node._nodeid`, an attribute pytest 9 no longer has.
    request.node._nodeid = request.node.nodeid
    _, token = AuthToken.objects.create(admin_user, expiry=None)
    make_pool(name="fuzzed")  # so that pool paths reach the serializers, not only 404s
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Token {token}"},
            "generation": {"database": "none", "deterministic": True},
            "phases": {
                "examples": {"enabled": False},
                "coverage": {"enabled": False},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )
    codes = known_codes()
    # Django closes "old" connections when a request starts and finishes; here that would close the connection
    # holding the test's transaction (Django's own test client disconnects this handler the same way).
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        loaded = schemathesis.openapi.from_wsgi("/api/schema/", application, config=config)

        @loaded.hook
        def flatmap_path_parameters(context, path_parameters):
            collection = context.operation.path.split("/")[2]
            if not path_parameters or len(path_parameters) != 1 or not codes.get(collection):
                return st.just(path_parameters)
            (name,) = path_parameters
            return st.one_of(
                st.just(path_parameters), st.sampled_from([{name: code} for code in codes[collection]])
            )

        yield loaded
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_a_server_error_or_off_its_schema(case):
    case.call_and_validate(checks=CHECKS)
