"""The OpenAPI schema is valid and generated without a single warning (what `make` and CI also check)."""

from io import StringIO

import yaml
from django.core.management import call_command


def test_the_openapi_schema_validates_without_warnings():
    out = StringIO()

    # --fail-on-warn raises SchemaGenerationError on the first warning the generator emits.
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    schema = yaml.safe_load(out.getvalue())
    assert schema["openapi"].startswith("3.")
    assert "/api/instance-types/{code}/zones/" in schema["paths"]
    assert "/api/models/{code}/compatible-instance-types/" in schema["paths"]


def test_the_schema_is_served_with_the_swagger_ui(client):
    assert client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["info"]["title"] == (
        "Inventiv API"
    )
    assert client.get("/api/docs/").status_code == 200
