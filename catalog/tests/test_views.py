"""The Settings pages through Django's test client: full pages, HTMX fragments, edits and permissions."""

from decimal import Decimal

import pytest

from catalog.models import InstanceType, LlmModel, Provider, RuntimeSetting, Zone

HTMX = {"HTTP_HX_REQUEST": "true"}


def htmx(target: str) -> dict:
    return {**HTMX, "HTTP_HX_TARGET": target}


@pytest.fixture
def staff(client, seed, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer(client, seed, viewer_user):
    client.force_login(viewer_user)
    return client


def zone(code: str) -> Zone:
    return Zone.objects.get(code=code)


def instance_type(code: str) -> InstanceType:
    return InstanceType.objects.get(code=code)


def zone_codes(code: str) -> set[str]:
    return set(instance_type(code).zones.values_list("code", flat=True))


# --- Pages and fragments --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/settings/", "/settings/zones/", "/settings/zones/1/edit/"])
def test_it_sends_anonymous_visitors_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize(
    "tab, code",
    [("providers", "scaleway"), ("regions", "nl-ams"), ("zones", "fr-par-1"), ("instance-types", "H100-1-80G"),
     ("models", "mock-echo"), ("runtime", "heartbeat_interval_s")],
)  # fmt: skip
def test_it_renders_each_tab_as_a_full_page(staff, tab, code):
    response = staff.get(f"/settings/{tab}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" in body and 'id="panel"' in body
    assert f'data-code="{code}"' in body
    assert f'href="/settings/{tab}/" hx-get="/settings/{tab}/"' in body  # links keep their href


def test_it_opens_on_the_providers_tab(staff):
    response = staff.get("/settings/")
    assert response.context["tab"].slug == "providers"
    assert 'data-code="mock"' in response.content.decode()


def test_it_answers_a_tab_link_from_htmx_with_the_panel_only(staff):
    response = staff.get("/settings/zones/", **htmx("panel"))
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="panel"')
    assert "<html" not in body
    assert "<title>Settings · Zones · Inventiv</title>" in body
    assert "HX-Request" in response["Vary"]


def test_it_answers_an_htmx_history_restore_with_the_whole_page(staff):
    body = staff.get("/settings/zones/", **HTMX, HTTP_HX_HISTORY_RESTORE_REQUEST="true").content.decode()
    assert "<html" in body


def test_it_answers_the_search_box_with_the_matching_rows_only(staff):
    response = staff.get("/settings/zones/?q=AMS", **htmx("rows"))
    body = response.content.decode()
    assert body.lstrip().startswith('<tbody id="rows">')
    assert 'data-code="nl-ams-1"' in body and 'data-code="nl-ams-3"' in body
    assert 'data-code="fr-par-1"' not in body


def test_it_filters_the_full_page_by_name_without_javascript(staff):
    body = staff.get("/settings/models/?q=llama").content.decode()
    assert 'data-code="meta-llama/Llama-3.1-8B-Instruct"' in body
    assert 'data-code="mock-echo"' not in body
    assert 'value="llama"' in body


def test_it_says_when_nothing_matches_the_search(staff):
    body = staff.get("/settings/regions/?q=tokyo", **htmx("rows")).content.decode()
    assert "No regions match “tokyo”." in body


def test_it_answers_404_for_an_unknown_tab(staff):
    assert staff.get("/settings/secrets/").status_code == 404


def test_it_shows_prices_gpus_and_zones_offered_for_instance_types(staff):
    body = staff.get("/settings/instance-types/?q=L4-1-24G", **htmx("rows")).content.decode()
    assert "<td class=\"num\">0.7875</td>" in body
    assert "1 × 24 GB" in body
    assert '<span class="chip">fr-par-2</span><span class="chip">pl-waw-2</span>' in body


def test_it_shows_the_instance_types_compatible_with_each_model(staff):
    rows = {row.code: row for row in staff.get("/settings/models/").context["rows"]}
    assert rows["mock-echo"].compatible_types == ["MOCK-GPU-S", "MOCK-4GPU-M"]
    assert "L4-1-24G" in rows["Qwen/Qwen2.5-7B-Instruct"].compatible_types
    assert "MOCK-GPU-S" not in rows["Qwen/Qwen2.5-7B-Instruct"].compatible_types
    # 160 GB of VRAM: only types with at least that much in total, cheapest first.
    big = rows["Qwen/Qwen2.5-72B-Instruct"].compatible_types
    assert big[:2] == ["H100-2-80G", "L40S-4-48G"]
    assert "L40S-2-48G" not in big


# --- Editing in place -----------------------------------------------------------------------


def test_it_swaps_a_row_for_its_form_and_back(staff):
    pk = zone("fr-par-1").pk
    form_row = staff.get(f"/settings/zones/{pk}/edit/", **HTMX).content.decode()
    assert 'class="editing"' in form_row
    assert f'form="edit-zone-{pk}"' in form_row and 'value="Paris 1"' in form_row
    row = staff.get(f"/settings/zones/{pk}/", **HTMX).content.decode()
    assert "Deactivate" in row and "editing" not in row


def test_it_shows_the_form_inside_the_full_page_without_javascript(staff):
    pk = zone("fr-par-1").pk
    body = staff.get(f"/settings/zones/{pk}/edit/").content.decode()
    assert "<html" in body and f'id="edit-zone-{pk}"' in body


def test_it_saves_an_edited_zone_and_returns_the_read_only_row(staff):
    pk = zone("fr-par-1").pk
    response = staff.post(f"/settings/zones/{pk}/edit/", {"name": "Paris One", "active": "on"}, **HTMX)
    assert "<td>Paris One</td>" in response.content.decode()
    assert zone("fr-par-1").name == "Paris One"


def test_it_redirects_to_the_tab_after_a_save_without_javascript(staff):
    pk = zone("fr-par-1").pk
    response = staff.post(f"/settings/zones/{pk}/edit/", {"name": "Paris One"})
    assert response.status_code == 302 and response["Location"] == "/settings/zones/"
    assert not zone("fr-par-1").active  # an unticked box is a deactivation


def test_it_saves_instance_type_prices_and_specs(staff):
    it = instance_type("L4-1-24G")
    data = {"name": "L4", "gpu_count": 2, "vram_per_gpu_gb": 24, "vcpu": 16, "ram_gb": 96, "cost_per_hour": "1.5", "active": "on"}
    staff.post(f"/settings/instance-types/{it.pk}/edit/", data, **HTMX)
    it.refresh_from_db()
    assert (it.gpu_count, it.vcpu, it.cost_per_hour) == (2, 16, Decimal("1.5"))


def test_it_refuses_a_negative_price_naming_the_field(staff):
    it = instance_type("L4-1-24G")
    data = {"name": "L4", "gpu_count": 1, "vram_per_gpu_gb": 24, "vcpu": 8, "ram_gb": 48, "cost_per_hour": "-1"}
    body = staff.post(f"/settings/instance-types/{it.pk}/edit/", data, **HTMX).content.decode()
    assert "Price (EUR/h): Ensure this value is greater than or equal to 0." in body
    assert instance_type("L4-1-24G").cost_per_hour == Decimal("0.7875")


def test_it_lets_a_model_run_on_the_simulator_and_shows_the_new_compatible_types(staff):
    model = LlmModel.objects.get(code="Qwen/Qwen2.5-7B-Instruct")
    data = {"name": model.name, "vram_required_gb": 16, "context_length": 32768, "allow_simulator": "on", "active": "on"}
    body = staff.post(f"/settings/models/{model.pk}/edit/", data, **HTMX).content.decode()
    assert "simulator allowed" in body and '<span class="chip">MOCK-GPU-S</span>' in body
    assert LlmModel.objects.get(pk=model.pk).allow_simulator


@pytest.mark.parametrize(
    "value, reason",
    [("abc", "Value: &#x27;abc&#x27; is not a valid int"), ("0", "Value: 0 is below the minimum 1"),
     ("301", "Value: 301 is above the maximum 300"), ("", "Value: This field is required.")],
)  # fmt: skip
def test_it_refuses_a_bad_runtime_setting_value_and_saves_nothing(staff, value, reason):
    setting = RuntimeSetting.objects.get(key="heartbeat_interval_s")
    response = staff.post(f"/settings/runtime/{setting.pk}/edit/", {"value": value}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and 'class="editing"' in body
    assert reason in body
    assert RuntimeSetting.objects.get(pk=setting.pk).value == "5"


def test_it_saves_a_valid_runtime_setting_value(staff):
    setting = RuntimeSetting.objects.get(key="mock_deletion_delay_s")
    body = staff.post(f"/settings/runtime/{setting.pk}/edit/", {"value": " 2.5 "}, **HTMX).content.decode()
    assert "<strong>2.5</strong>" in body
    assert RuntimeSetting.objects.get(pk=setting.pk).value == "2.5"


# --- Active flags ---------------------------------------------------------------------------


def test_it_toggles_a_zone_inactive_and_back(staff):
    pk = zone("fr-par-1").pk
    body = staff.post(f"/settings/zones/{pk}/toggle/", **HTMX).content.decode()
    assert "inactive" in body and "Activate" in body
    assert not zone("fr-par-1").active
    staff.post(f"/settings/zones/{pk}/toggle/", **HTMX)
    assert zone("fr-par-1").active


def test_it_toggles_a_provider_and_redirects_without_javascript(staff):
    pk = Provider.objects.get(code="scaleway").pk
    response = staff.post(f"/settings/providers/{pk}/toggle/")
    assert response["Location"] == "/settings/providers/"
    assert not Provider.objects.get(pk=pk).active


def test_it_has_no_active_flag_for_runtime_settings(staff):
    setting = RuntimeSetting.objects.first()
    assert staff.post(f"/settings/runtime/{setting.pk}/toggle/", **HTMX).status_code == 404


def test_it_refuses_a_toggle_by_get(staff):
    assert staff.get(f"/settings/zones/{zone('fr-par-1').pk}/toggle/").status_code == 405


# --- Zone offers ----------------------------------------------------------------------------


def test_it_offers_checkboxes_for_the_instance_types_provider_zones_only(staff):
    it = instance_type("L4-1-24G")
    form = staff.get(f"/settings/instance-types/{it.pk}/zones/", **HTMX).content.decode()
    assert f'value="{zone("fr-par-2").pk}" checked' in form
    assert f'value="{zone("fr-par-1").pk}">' in form
    assert "mock-eu-1" not in form


def test_it_saves_the_ticked_zones(staff):
    it = instance_type("L4-1-24G")
    ticked = [zone("fr-par-1").pk, zone("nl-ams-1").pk]
    body = staff.post(f"/settings/instance-types/{it.pk}/zones/", {"zones": ticked}, **HTMX).content.decode()
    assert '<span class="chip">fr-par-1</span><span class="chip">nl-ams-1</span>' in body
    assert zone_codes("L4-1-24G") == {"fr-par-1", "nl-ams-1"}


def test_it_removes_every_zone_when_all_boxes_are_unticked(staff):
    it = instance_type("L4-1-24G")
    staff.post(f"/settings/instance-types/{it.pk}/zones/", {}, **HTMX)
    assert zone_codes("L4-1-24G") == set()


def test_it_refuses_a_zone_of_another_provider_with_the_reason(staff):
    it = instance_type("L4-1-24G")
    body = staff.post(f"/settings/instance-types/{it.pk}/zones/", {"zones": [zone("mock-eu-1").pk]}, **HTMX).content
    assert "Zones: mock-eu-1 belong to another provider than scaleway" in body.decode()
    assert zone_codes("L4-1-24G") == {"fr-par-2", "pl-waw-2"}


# --- Creating rows --------------------------------------------------------------------------


def test_it_creates_a_zone_and_shows_it_in_the_tab(staff):
    region = Zone.objects.get(code="fr-par-1").region
    body = staff.post("/settings/zones/new/", {"region": region.pk, "code": "fr-par-9", "name": "Paris 9", "active": "on"}, **htmx("panel")).content.decode()
    assert 'data-code="fr-par-9"' in body and "fr-par-9 created." in body
    assert zone("fr-par-9").region == region


def test_it_refuses_a_duplicate_zone_code_and_keeps_the_form_open(staff):
    region = Zone.objects.get(code="fr-par-1").region
    body = staff.post("/settings/zones/new/", {"region": region.pk, "code": "fr-par-1"}, **htmx("panel")).content.decode()
    assert "<details class=\"card create\" open>" in body
    assert "already exists" in body
    assert Zone.objects.filter(code="fr-par-1").count() == 1


def test_it_creates_a_model_without_javascript(staff):
    data = {"code": "org/New-Model", "vram_required_gb": 12, "context_length": 4096, "active": "on"}
    response = staff.post("/settings/models/new/", data)
    assert response.status_code == 302 and response["Location"] == "/settings/models/"
    assert LlmModel.objects.get(code="org/New-Model").vram_required_gb == 12


def test_it_has_no_create_form_for_runtime_settings(staff):
    assert staff.post("/settings/runtime/new/", {"key": "x"}).status_code == 404


# --- Permissions ----------------------------------------------------------------------------


def test_it_shows_read_only_tables_to_non_staff_users(viewer):
    body = viewer.get("/settings/zones/").content.decode()
    assert 'data-code="fr-par-1"' in body
    assert "Edit</a>" not in body and "Deactivate" not in body and "New zone" not in body
    assert "Read only" in body


@pytest.mark.parametrize("action", ["edit", "toggle"])
def test_it_refuses_writes_from_non_staff_users(viewer, action):
    pk = zone("fr-par-1").pk
    response = viewer.post(f"/settings/zones/{pk}/{action}/", {"name": "Hacked"}, **HTMX)
    assert response.status_code == 403
    assert zone("fr-par-1").name == "Paris 1" and zone("fr-par-1").active


def test_it_refuses_zone_offers_and_creation_from_non_staff_users(viewer):
    it = instance_type("L4-1-24G")
    assert viewer.post(f"/settings/instance-types/{it.pk}/zones/", {}, **HTMX).status_code == 403
    assert viewer.post("/settings/zones/new/", {"code": "x"}).status_code == 403
    assert zone_codes("L4-1-24G") == {"fr-par-2", "pl-waw-2"}


def test_it_refuses_the_edit_form_to_non_staff_users(viewer):
    assert viewer.get(f"/settings/zones/{zone('fr-par-1').pk}/edit/", **HTMX).status_code == 403
