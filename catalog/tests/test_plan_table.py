"""`manage.py launch_plans`: the README's table of plans, every seeded Scaleway type against every model."""

from io import StringIO
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from catalog.models import InstanceType, LlmModel


def table(provider: str = "scaleway") -> list[str]:
    out = StringIO()
    call_command("launch_plans", provider, stdout=out)
    return out.getvalue().splitlines()


def test_it_lists_every_model_against_every_type_of_the_provider(seed):
    lines = table()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]
            if line.startswith("| ")}

    assert set(header[2:]) == set(InstanceType.objects.filter(provider__code="scaleway").values_list("code", flat=True))
    assert len(rows) == LlmModel.objects.filter(mock_only=False).count()
    llama_8b = dict(zip(header, rows["meta-llama/Llama-3.1-8B-Instruct"], strict=True))
    assert llama_8b["L4-1-24G"] == "26k·1" and llama_8b["RENDER-S"] == "no: gpu" and llama_8b["Disk"] == "80 GB"
    llama_70b = dict(zip(header, rows["meta-llama/Llama-3.1-70B-Instruct"], strict=True))
    assert llama_70b["L40S-1-48G"] == "no: vram" and llama_70b["H100-SXM-4-80G"] == "128k·4"
    assert "Qwen/Qwen3-Embedding-0.6B (embed)" in rows


def test_the_legend_explains_each_refusal(seed):
    legend = "\n".join(table()[-2:])
    assert "`vram`" in legend and "`gpu`" in legend and "`context`" in legend


def test_the_mock_table_explains_its_own_refusal_and_the_scaleway_table_leaves_it_out(seed):
    mock = "\n".join(table("mock"))
    assert "no: simulator" in mock and "`simulator`:" in mock
    assert "`simulator`:" not in "\n".join(table())


def test_the_readme_shows_the_table_as_the_command_prints_it(seed):
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()

    assert "\n".join(table()) in readme, "README's Launch plans table is stale: paste `manage.py launch_plans`"
