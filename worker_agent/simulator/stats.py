"""The simulator's Prometheus series, with vLLM's names, labels, help texts and bucket boundaries.

Bucket boundaries are copied from vLLM's `vllm/v1/metrics/loggers.py` so that dashboards and the
agent's quantile code see exactly the resolution a real engine gives them.
"""

import time
from bisect import bisect_left

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)
INTER_TOKEN_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
)
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
)
FINISH_REASONS = ("stop", "length", "abort")


class Histogram:
    """Per-bucket counts (not cumulative) so that an observation is one bisect and one add."""

    def __init__(self, name: str, help_text: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.help_text = help_text
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.total = 0.0
        self.created = time.time()

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.total += value * times

    def render(self, labels: str, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help_text}\n# TYPE {self.name} histogram\n")
        cumulative = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            cumulative += count
            out.append(f'{self.name}_bucket{{engine="0",le="{bound}",{labels}}} {float(cumulative)}\n')
        cumulative += self.counts[-1]
        out.append(f'{self.name}_bucket{{engine="0",le="+Inf",{labels}}} {float(cumulative)}\n')
        out.append(f'{self.name}_count{{engine="0",{labels}}} {float(cumulative)}\n')
        out.append(f'{self.name}_sum{{engine="0",{labels}}} {self.total}\n')
        out.append(f"# HELP {self.name}_created {self.help_text}\n# TYPE {self.name}_created gauge\n")
        out.append(f'{self.name}_created{{engine="0",{labels}}} {self.created}\n')


class EngineStats:
    """Counters and histograms that one simulated engine (engine="0") exposes on `/metrics`."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0  # the simulator never preempts, but the series exists as in vLLM
        self.success = {reason: 0 for reason in FINISH_REASONS}
        self.created = time.time()
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS
        )
        self.inter_token = Histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", INTER_TOKEN_BUCKETS
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS
        )
        self.queue = Histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )

    def record(
        self,
        *,
        prompt_tokens: int,
        generation_tokens: int,
        finish_reason: str,
        queue_s: float,
        ttft_s: float,
        e2e_s: float,
    ) -> None:
        """Account for one finished (or aborted) request."""
        self.prompt_tokens += prompt_tokens
        self.generation_tokens += generation_tokens
        self.success[finish_reason] += 1
        self.queue.observe(queue_s)
        self.e2e.observe(e2e_s)
        if generation_tokens:
            self.ttft.observe(ttft_s)
        if generation_tokens > 1:
            # One observation per gap between tokens, at the measured mean gap of this request.
            gaps = generation_tokens - 1
            self.inter_token.observe(max(e2e_s - ttft_s, 0.0) / gaps, gaps)

    def render(self, *, model_name: str, running: int, waiting: int, kv_cache_usage: float,
               prefix_cache_queries: int = 0, prefix_cache_hits: int = 0) -> str:
        labels = f'model_name="{_escape(model_name)}"'
        out: list[str] = []
        for name, help_text, value in (
            ("vllm:num_requests_running", "Number of requests in model execution batches.", running),
            ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting),
            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv_cache_usage),
        ):
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
            out.append(f'{name}{{engine="0",{labels}}} {float(value)}\n')
        for name, help_text, value in (
            ("vllm:num_preemptions", "Cumulative number of preemption from the engine.", self.preemptions),
            ("vllm:prompt_tokens", "Number of prefill tokens processed.", self.prompt_tokens),
            ("vllm:generation_tokens", "Number of generation tokens processed.", self.generation_tokens),
            ("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
             prefix_cache_queries),
            ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", prefix_cache_hits),
        ):
            _render_counter(out, name, help_text, [(f'engine="0",{labels}', value)], self.created)
        _render_counter(
            out,
            "vllm:request_success",
            "Count of successfully processed requests.",
            [(f'engine="0",finished_reason="{reason}",{labels}', count) for reason, count in self.success.items()],
            self.created,
        )
        for histogram in (self.ttft, self.inter_token, self.e2e, self.queue):
            histogram.render(labels, out)
        return "".join(out)


def _render_counter(out: list[str], name: str, help_text: str, series: list[tuple[str, int]], created: float) -> None:
    # prometheus_client's text format: the family is named `<name>_total`, and the creation time
    # follows as a separate `<name>_created` gauge family.
    out.append(f"# HELP {name}_total {help_text}\n# TYPE {name}_total counter\n")
    out.extend(f"{name}_total{{{labels}}} {float(value)}\n" for labels, value in series)
    out.append(f"# HELP {name}_created {help_text}\n# TYPE {name}_created gauge\n")
    out.extend(f"{name}_created{{{labels}}} {created}\n" for labels, _ in series)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
