"""Read vLLM's Prometheus `/metrics` text into the engine figures that heartbeats carry.

A small parser of our own: the agent must stay light, and it only needs sample lines. Counters and
gauges are summed across label sets (several engines under data parallelism); KV-cache usage is a
fraction per engine, so it is averaged. Latency quantiles come from the histogram buckets that were
added since the previous scrape, so they describe the last interval rather than the engine's life.
"""

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

INF = math.inf

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")  # new name first; old before 0.10
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
PREEMPTIONS = "vllm:num_preemptions_total"
REQUEST_SUCCESS = "vllm:request_success_total"
# Tokens looked up in / found in the prefix cache; the `gpu_` names are vLLM's before 0.9.
PREFIX_CACHE_QUERIES = ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total")
PREFIX_CACHE_HITS = ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total")
TTFT = ("vllm:time_to_first_token_seconds",)
INTER_TOKEN = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")  # the latter: old vLLM


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class EngineMetrics:
    """The `engine` object of a heartbeat; a field is None when the engine does not expose it."""

    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    requests_total: float | None = None
    preemptions_total: float | None = None
    prefix_cache_queries_total: float | None = None
    prefix_cache_hits_total: float | None = None
    # Hits / queries (tokens) since the previous scrape; None without queries in between.
    prefix_cache_hit_rate: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


class ParseError(ValueError):
    pass


def parse_prometheus_text(text: str) -> list[Sample]:
    """Every sample line of a Prometheus text exposition; comments and blank lines are skipped."""
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            samples.append(_parse_line(line))
        except (ValueError, IndexError) as exc:
            raise ParseError(f"line {number}: {exc}: {line[:200]!r}") from None
    return samples


def _parse_line(line: str) -> Sample:
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name = line[:brace]
        labels, end = _parse_labels(line, brace + 1)
        rest = line[end:]
    else:
        name, rest = line[:space], line[space:]
        labels = {}
    # The value may be followed by a timestamp in milliseconds, which we do not need.
    return Sample(name, labels, float(rest.split()[0]))


def _parse_labels(line: str, position: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while True:
        while line[position] in " ,":
            position += 1
        if line[position] == "}":
            return labels, position + 1
        equals = line.index("=", position)
        key = line[position:equals].strip()
        position = equals + 1
        while line[position] == " ":
            position += 1
        if line[position] != '"':
            raise ValueError(f"label {key} has no quoted value")
        position += 1
        chars = []
        while line[position] != '"':
            if line[position] == "\\":
                position += 1
                chars.append({"n": "\n"}.get(line[position], line[position]))
            else:
                chars.append(line[position])
            position += 1
        labels[key] = "".join(chars)
        position += 1


def sum_of(samples: Iterable[Sample], name: str) -> float | None:
    values = [s.value for s in samples if s.name == name]
    return sum(values) if values else None


def first_sum_of(samples: Iterable[Sample], names: tuple[str, ...]) -> float | None:
    """The sum of the first of `names` present (a new name and the one it replaced are not added up)."""
    for name in names:
        total = sum_of(samples, name)
        if total is not None:
            return total
    return None


def mean_of(samples: Iterable[Sample], names: tuple[str, ...]) -> float | None:
    for name in names:
        values = [s.value for s in samples if s.name == name]
        if values:
            return sum(values) / len(values)
    return None


def cumulative_buckets(samples: Iterable[Sample], names: tuple[str, ...]) -> dict[float, float] | None:
    """`le` -> cumulative count of the first histogram present, summed across the other labels."""
    for name in names:
        bucket_name = f"{name}_bucket"
        buckets: dict[float, float] = {}
        for sample in samples:
            if sample.name == bucket_name and "le" in sample.labels:
                bound = float(sample.labels["le"])  # float() reads "+Inf"
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
        if buckets:
            return buckets
    return None


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative buckets: linear inside the bucket.

    As in Prometheus, a rank that falls in the +Inf bucket answers the highest finite bound, and
    the first bucket's lower bound is 0. None when the histogram holds no observation.
    """
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != INF:
        return None
    total = buckets[INF]
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == INF:
                return previous_bound if len(bounds) > 1 else None
            if bound <= 0 or count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return None


class HistogramWindow:
    """Keeps the previous scrape's cumulative buckets and yields what was observed since then."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._previous: dict[float, float] | None = None

    def advance(self, samples: list[Sample]) -> dict[float, float] | None:
        """The buckets observed since the last call; None on the first call or without the series."""
        current = cumulative_buckets(samples, self.names)
        previous, self._previous = self._previous, current
        if current is None or previous is None:
            return None
        delta = {bound: count - previous.get(bound, 0.0) for bound, count in current.items()}
        if any(value < 0 for value in delta.values()):
            return current  # the engine restarted and its counters began again from zero
        return delta


class EngineMetricsReader:
    """Turns successive `/metrics` scrapes of one engine into heartbeat figures."""

    def __init__(self) -> None:
        self._ttft = HistogramWindow(TTFT)
        self._inter_token = HistogramWindow(INTER_TOKEN)
        self._prefix_cache: tuple[float, float] | None = None  # (queries, hits) at the previous scrape

    def read(self, text: str) -> EngineMetrics:
        samples = parse_prometheus_text(text)
        ttft = self._ttft.advance(samples)
        inter_token = self._inter_token.advance(samples)
        queries, hits = first_sum_of(samples, PREFIX_CACHE_QUERIES), first_sum_of(samples, PREFIX_CACHE_HITS)
        return EngineMetrics(
            running=sum_of(samples, RUNNING),
            waiting=sum_of(samples, WAITING),
            kv_cache_usage=mean_of(samples, KV_CACHE_USAGE),
            ttft_p50_s=_quantile(0.5, ttft),
            ttft_p95_s=_quantile(0.95, ttft),
            itl_p50_s=_quantile(0.5, inter_token),
            itl_p95_s=_quantile(0.95, inter_token),
            prompt_tokens_total=sum_of(samples, PROMPT_TOKENS),
            generation_tokens_total=sum_of(samples, GENERATION_TOKENS),
            requests_total=sum_of(samples, REQUEST_SUCCESS),
            preemptions_total=sum_of(samples, PREEMPTIONS),
            prefix_cache_queries_total=queries,
            prefix_cache_hits_total=hits,
            prefix_cache_hit_rate=self._hit_rate(queries, hits),
        )

    def _hit_rate(self, queries: float | None, hits: float | None) -> float | None:
        """The share of prompt tokens served from the prefix cache since the previous scrape."""
        if queries is None or hits is None:
            self._prefix_cache = None
            return None
        previous, self._prefix_cache = self._prefix_cache, (queries, hits)
        if previous is None:
            return None
        asked, found = queries - previous[0], hits - previous[1]
        if asked < 0 or found < 0:  # the engine restarted: its counters began again from zero
            asked, found = queries, hits
        return min(found / asked, 1.0) if asked > 0 else None


def _quantile(q: float, buckets: dict[float, float] | None) -> float | None:
    return None if buckets is None else histogram_quantile(q, buckets)
