"""A provider without credentials (Scaleway with no SCW_* keys) is marked in Settings and refused by the create
form before anything is stored: no "Instance requested." followed by a failure."""

import pytest

from catalog.models import InstanceType, LlmModel, Zone
from instances.models import Instance
from instances.tests.factories import mock_cloud, scaleway_cloud  # noqa: F401 (fixtures)

SCW_VARIABLES = ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID", "SCW_API_URL", "SCW_ACCESS_KEY_FILE",
                 "SCW_SECRET_KEY_FILE")


@pytest.fixture
def staff(client, admin_user, mock_cloud):
    client.force_login(admin_user)
    return client


@pytest.fixture
def no_scaleway_env(monkeypatch):
    for name in SCW_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def scaleway_form() -> dict:
    zone = Zone.objects.get(code="fr-par-2")
    instance_type = InstanceType.objects.filter(provider__code="scaleway", zone_offers__zone=zone).first()
    return {"zone": zone.pk, "instance_type": instance_type.pk, "model": LlmModel.objects.first().pk}


def test_settings_marks_a_provider_without_credentials(staff, no_scaleway_env):
    html = staff.get("/settings/providers/").content.decode()
    scaleway = html[html.index('data-code="scaleway"'):]
    scaleway = scaleway[:scaleway.index("</tr>")]
    mock = html[html.index('data-code="mock"'):]
    mock = mock[:mock.index("</tr>")]
    assert 'data-configured="false"' in scaleway and "not configured" in scaleway and "SCW_ACCESS_KEY" in scaleway
    assert 'data-configured="true"' in mock


def test_the_create_form_disables_the_zones_of_an_unconfigured_provider(staff, no_scaleway_env):
    html = staff.get("/instances/").content.decode()
    option = html[html.index(f'<option value="{Zone.objects.get(code="fr-par-2").pk}"'):]
    assert option[:option.index("</option>")].count("disabled") == 1 and "not configured" in option[:200]
    mock = html[html.index(f'<option value="{Zone.objects.get(code="mock-eu-1").pk}"'):]
    assert "disabled" not in mock[:mock.index("</option>")]


def test_a_create_for_an_unconfigured_provider_is_refused_before_the_request(staff, no_scaleway_env):
    response = staff.post("/instances/new/", scaleway_form(), HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200 and "data-refused" in html and "Not requested" in html
    assert "is not configured" in html and "requested." not in html
    assert not Instance.objects.exists()

    plain = staff.post("/instances/new/", scaleway_form())
    assert plain.status_code == 302 and not Instance.objects.exists()


def test_a_configured_provider_is_offered(staff, scaleway_cloud):
    html = staff.get("/settings/providers/").content.decode()
    scaleway = html[html.index('data-code="scaleway"'):]
    assert 'data-configured="true"' in scaleway[:scaleway.index("</tr>")]
