"""The /metrics reader against vLLM exposition text (fixtures in tests/data, see their README)."""

from pathlib import Path

import pytest

from worker_agent.metrics import (
    INF,
    EngineMetricsReader,
    HistogramWindow,
    ParseError,
    histogram_quantile,
    parse_prometheus_text,
)

DATA = Path(__file__).parent / "data"


def fixture(name: str) -> str:
    return (DATA / name).read_text()


def test_it_parses_labels_with_escapes_scientific_values_and_timestamps():
    samples = parse_prometheus_text(
        '# HELP x A help line\n'
        'x_total{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 2.097152e+06 1700000000000\n'
        "plain 3\n"
        'spaced{ a = "1" , } -1.5\n'
    )
    assert samples[0].labels == {"a": 'q"uote', "b": "back\\slash", "c": "new\nline"}
    assert samples[0].value == 2097152.0
    assert (samples[1].name, samples[1].labels, samples[1].value) == ("plain", {}, 3.0)
    assert samples[2].labels == {"a": "1"} and samples[2].value == -1.5


def test_it_rejects_a_line_that_is_not_a_sample():
    with pytest.raises(ParseError, match="line 2"):
        parse_prometheus_text("ok 1\nbroken{le=0.1} 2\n")


def test_it_reads_gauges_and_counters_of_a_data_parallel_vllm_summed_across_engines():
    metrics = EngineMetricsReader().read(fixture("vllm_v1_dp2_scrape1.prom"))
    assert metrics.running == 8.0
    assert metrics.waiting == 2.0
    assert metrics.kv_cache_usage == pytest.approx(0.385)  # mean of 0.45 and 0.32: a fraction per engine
    assert metrics.prompt_tokens_total == 3_145_728.0
    assert metrics.generation_tokens_total == 786_432.0
    assert metrics.requests_total == 397.0  # every finished_reason of both engines
    assert metrics.preemptions_total == 4.0
    assert metrics.prefix_cache_queries_total == 1_572_864.0  # tokens, the new name only (not the gpu_ one too)
    assert metrics.prefix_cache_hits_total == 393_216.0


def prefix_scrape(queries: float, hits: float, *, old_names: bool = False) -> str:
    prefix = "vllm:gpu_prefix_cache" if old_names else "vllm:prefix_cache"
    return (f'{prefix}_queries_total{{engine="0"}} {queries}\n{prefix}_hits_total{{engine="0"}} {hits}\n'
            f'{prefix}_queries_total{{engine="1"}} 0.0\n{prefix}_hits_total{{engine="1"}} 0.0\n')


def test_it_reports_the_prefix_cache_hit_rate_of_the_tokens_queried_since_the_last_scrape():
    reader = EngineMetricsReader()
    first = reader.read(prefix_scrape(1000, 100))
    assert first.prefix_cache_hit_rate is None  # nothing to compare with yet
    assert reader.read(prefix_scrape(3000, 1700)).prefix_cache_hit_rate == pytest.approx(0.8)
    assert reader.read(prefix_scrape(3000, 1700)).prefix_cache_hit_rate is None  # no query in between
    restarted = reader.read(prefix_scrape(400, 100))  # counters began again from zero
    assert restarted.prefix_cache_hit_rate == pytest.approx(0.25)


def test_it_reads_the_prefix_cache_counters_of_a_vllm_before_0_9():
    reader = EngineMetricsReader()
    reader.read(prefix_scrape(100, 0, old_names=True))
    metrics = reader.read(prefix_scrape(300, 50, old_names=True))
    assert (metrics.prefix_cache_queries_total, metrics.prefix_cache_hit_rate) == (300.0, 0.25)


def test_it_has_no_latency_quantiles_after_a_single_scrape():
    metrics = EngineMetricsReader().read(fixture("vllm_v1_dp2_scrape1.prom"))
    assert (metrics.ttft_p50_s, metrics.ttft_p95_s, metrics.itl_p50_s, metrics.itl_p95_s) == (None,) * 4


def test_it_computes_ttft_and_inter_token_quantiles_from_the_buckets_added_between_two_scrapes():
    reader = EngineMetricsReader()
    reader.read(fixture("vllm_v1_dp2_scrape1.prom"))
    metrics = reader.read(fixture("vllm_v1_dp2_scrape2.prom"))
    # TTFT delta: 30 observations in (0.1, 0.25] and 10 in (0.25, 0.5], across both engines.
    assert metrics.ttft_p50_s == pytest.approx(0.1 + 0.15 * 20 / 30)
    assert metrics.ttft_p95_s == pytest.approx(0.25 + 0.25 * 8 / 10)
    # ITL delta: 120 in (0.01, 0.025], 80 in (0.025, 0.05], 20 in (0.05, 0.075].
    assert metrics.itl_p50_s == pytest.approx(0.01 + 0.015 * 110 / 120)
    assert metrics.itl_p95_s == pytest.approx(0.05 + 0.025 * 9 / 20)
    assert metrics.running == 11.0 and metrics.waiting == 0.0
    assert metrics.kv_cache_usage == pytest.approx(0.4)


def test_it_reports_no_quantile_when_nothing_was_observed_since_the_last_scrape():
    reader = EngineMetricsReader()
    reader.read(fixture("vllm_v1_dp2_scrape2.prom"))
    metrics = reader.read(fixture("vllm_v1_dp2_scrape2.prom"))
    assert metrics.ttft_p50_s is None and metrics.itl_p95_s is None


def test_it_reads_an_older_vllm_with_gpu_cache_usage_and_time_per_output_token():
    reader = EngineMetricsReader()
    first = reader.read(fixture("vllm_v0_scrape1.prom"))
    assert first.kv_cache_usage == pytest.approx(0.27)
    assert (first.running, first.waiting, first.requests_total) == (4.0, 1.0, 42.0)
    second = reader.read(fixture("vllm_v0_scrape2.prom"))
    assert second.ttft_p50_s == pytest.approx(0.05)
    assert second.ttft_p95_s == pytest.approx(0.059)
    assert second.itl_p50_s == pytest.approx(0.025 + 0.025 * 500 / 600)
    assert second.itl_p95_s == pytest.approx(0.05 + 0.025 * 350 / 400)


def test_it_prefers_the_new_kv_cache_name_when_both_are_exposed():
    text = 'vllm:gpu_cache_usage_perc{engine="0"} 0.9\nvllm:kv_cache_usage_perc{engine="0"} 0.1\n'
    assert EngineMetricsReader().read(text).kv_cache_usage == pytest.approx(0.1)


def test_it_reports_none_for_series_the_engine_does_not_expose():
    metrics = EngineMetricsReader().read("some_other_metric 1\n")
    assert all(value is None for value in metrics.as_dict().values())


def test_a_histogram_window_treats_shrinking_counts_as_an_engine_restart():
    window = HistogramWindow(("h",))
    window.advance(parse_prometheus_text('h_bucket{le="1"} 50\nh_bucket{le="+Inf"} 60\n'))
    delta = window.advance(parse_prometheus_text('h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 3\n'))
    assert delta == {1.0: 2.0, INF: 3.0}


def test_histogram_quantile_follows_prometheus_at_the_edges():
    assert histogram_quantile(0.5, {INF: 0.0}) is None
    assert histogram_quantile(0.5, {0.1: 10.0, INF: 10.0}) == pytest.approx(0.05)  # first bucket starts at 0
    assert histogram_quantile(0.99, {0.1: 1.0, 1.0: 1.0, INF: 10.0}) == 1.0  # +Inf answers the top bound
