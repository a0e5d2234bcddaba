"""The launch-plan panel the instance create form and the pool form show before anything is rented."""

import pytest

from catalog.models import InstanceType, LlmModel, Zone

URL = "/settings/launch-plan/"


@pytest.fixture
def staff(client, seed, admin_user):
    client.force_login(admin_user)
    return client


def pk(code: str) -> int:
    return InstanceType.objects.get(code=code).pk


def model_pk(code: str) -> int:
    return LlmModel.objects.get(code=code).pk


def test_it_shows_context_disk_and_price_of_the_chosen_pair(staff):
    body = staff.get(URL, {"model": model_pk("meta-llama/Llama-3.1-8B-Instruct"), "instance_type": pk("L4-1-24G")})

    html = body.content.decode()
    assert 'data-fits="true"' in html
    assert "context 26624 tokens" in html and "disk 80 GB (sbs_volume)" in html and "€0.7875/h" in html
    assert "needs HF_TOKEN" in html


def test_it_warns_when_a_gated_model_has_no_token_set(staff, settings):
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": ""}
    query = {"model": "meta-llama/Llama-3.1-8B-Instruct", "instance_type": "L4-1-24G"}

    assert "HF_TOKEN is not set" in staff.get(URL, query).content.decode()
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": "hf_x"}
    assert "HF_TOKEN is not set" not in staff.get(URL, query).content.decode()


def test_it_says_why_a_pair_cannot_be_served(staff):
    query = {"model": "meta-llama/Llama-3.1-70B-Instruct", "instance_type": "L40S-1-48G"}

    html = staff.get(URL, query).content.decode()

    assert 'data-fits="false"' in html and "needs 160 GB of VRAM" in html


def test_it_plans_each_choice_of_the_pool_form(staff):
    offer = f"{pk('H100-SXM-4-80G')}:{Zone.objects.get(code='fr-par-2').pk}"
    query = {"model": "meta-llama/Llama-3.1-70B-Instruct", "choices_0": offer, "choices_1": "", "choices_2": offer}

    html = staff.get(URL, query).content.decode()

    assert html.count('data-type="H100-SXM-4-80G"') == 1 and "tensor parallel 4" in html


def test_it_asks_for_a_model_first_and_ignores_unknown_rows(staff):
    assert "Choose a model" in staff.get(URL, {"instance_type": pk("L4-1-24G")}).content.decode()
    html = staff.get(URL, {"model": "nobody/nothing", "instance_type": "99999"}).content.decode()
    assert "data-fits" not in html
    for odd in ("9" * 40, "²", "x" * 500, "1\x00"):
        assert staff.get(URL, {"model": odd, "instance_type": odd}).status_code == 200


def test_it_needs_a_signed_in_user(client, seed):
    assert client.get(URL).status_code == 302


def test_the_create_and_pool_forms_ask_for_the_panel(staff):
    assert f'hx-get="{URL}"' in staff.get("/instances/").content.decode()
    assert f'hx-get="{URL}"' in staff.get("/pools/").content.decode()
