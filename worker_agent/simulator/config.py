"""The simulator's settings: what it serves and how fast it pretends to generate."""

from dataclasses import dataclass, field

from .prefix_cache import DEFAULT_BLOCK_SIZE, DEFAULT_KV_CACHE_BLOCKS

# The vLLM release whose HTTP surface the simulator copies; `/version` reports it with a suffix so
# nobody mistakes the simulator for a real engine.
VLLM_COMPAT_VERSION = "0.33.0"
SIM_VERSION = f"{VLLM_COMPAT_VERSION}+inventiv.sim"

DEFAULT_MAX_NUM_SEQS = 256  # vLLM's long-standing default for --max-num-seqs
DEFAULT_MAX_MODEL_LEN = 32768
DEFAULT_PORT = 8000
# Prompt tokens per second that one engine computes (prefill is compute-bound): of the order of
# Llama-3.1-8B in bf16 on one L4 (about 121 TFLOPS dense at roughly half use, 16 GFLOP per token).
DEFAULT_PREFILL_TOKENS_PER_SECOND = 4000.0


@dataclass
class SimConfig:
    """Everything `python -m worker_agent.simulator` accepts; `/sim/config` may change the timing."""

    model: str = "mock-echo"
    served_model_names: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    load_time_s: float = 0.0
    # Time to first token = ttft_s (a fixed overhead) + the uncached prompt tokens / prefill rate, the
    # prefills of concurrent requests taking turns (see engine.py).
    ttft_s: float = 0.0
    prefill_tokens_per_second: float = DEFAULT_PREFILL_TOKENS_PER_SECOND  # 0 means prefill takes no time
    tokens_per_second: float = 0.0  # 0 means no delay between tokens
    enable_prefix_caching: bool = True  # vLLM's default
    block_size: int = DEFAULT_BLOCK_SIZE
    kv_cache_blocks: int = DEFAULT_KV_CACHE_BLOCKS
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS
    max_model_len: int = DEFAULT_MAX_MODEL_LEN
    dead_file: str | None = None

    def __post_init__(self) -> None:
        if not self.served_model_names:
            self.served_model_names = [self.model]
        if self.max_num_seqs < 1:
            raise ValueError("max_num_seqs must be at least 1")
        if min(self.ttft_s, self.tokens_per_second, self.load_time_s, self.prefill_tokens_per_second) < 0:
            raise ValueError("timings must not be negative")
        if self.block_size < 1 or self.kv_cache_blocks < 1 or self.max_model_len < 1:
            raise ValueError("block_size, kv_cache_blocks and max_model_len must be at least 1")

    @property
    def inter_token_delay_s(self) -> float:
        return 1.0 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0
