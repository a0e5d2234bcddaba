"""The simulator's settings: what it serves and how fast it pretends to generate."""

from dataclasses import dataclass, field

# The vLLM release whose HTTP surface the simulator copies; `/version` reports it with a suffix so
# nobody mistakes the simulator for a real engine.
VLLM_COMPAT_VERSION = "0.33.0"
SIM_VERSION = f"{VLLM_COMPAT_VERSION}+inventiv.sim"

DEFAULT_MAX_NUM_SEQS = 256  # vLLM's long-standing default for --max-num-seqs
DEFAULT_MAX_MODEL_LEN = 32768
DEFAULT_PORT = 8000


@dataclass
class SimConfig:
    """Everything `python -m worker_agent.simulator` accepts; `/sim/config` may change the timing."""

    model: str = "mock-echo"
    served_model_names: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    load_time_s: float = 0.0
    ttft_s: float = 0.0
    tokens_per_second: float = 0.0  # 0 means no delay between tokens
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS
    max_model_len: int = DEFAULT_MAX_MODEL_LEN
    dead_file: str | None = None

    def __post_init__(self) -> None:
        if not self.served_model_names:
            self.served_model_names = [self.model]
        if self.max_num_seqs < 1:
            raise ValueError("max_num_seqs must be at least 1")
        if self.ttft_s < 0 or self.tokens_per_second < 0 or self.load_time_s < 0:
            raise ValueError("timings must not be negative")

    @property
    def inter_token_delay_s(self) -> float:
        return 1.0 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0
