"""In a browser: the pool form shows the plan of the chosen pair before anything is created."""

import pytest
from playwright.sync_api import expect

from catalog.models import InstanceType, Zone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_pool_form_shows_the_plan_or_the_refusal_of_each_choice(seed, logged_in_page):
    page = logged_in_page
    page.goto("/pools/")
    form = page.locator("#pool-create-form")
    l4 = f"{InstanceType.objects.get(code='L4-1-24G').pk}:{Zone.objects.get(code='fr-par-2').pk}"

    form.locator("#id_model").select_option("meta-llama/Llama-3.1-8B-Instruct")
    form.locator("#id_choices_0").select_option(l4)

    plan = form.locator('.launch-plan[data-type="L4-1-24G"]')
    expect(plan).to_contain_text("context 26624 tokens")
    expect(plan).to_contain_text("needs HF_TOKEN")
    form.locator("#id_model").select_option("meta-llama/Llama-3.1-70B-Instruct")
    expect(form.locator('.launch-plan[data-fits="false"]')).to_contain_text("needs 160 GB of VRAM")
    expect(form.locator("#id_name")).to_be_visible()  # the panel fills itself, never the form
