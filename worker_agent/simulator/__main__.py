"""`python -m worker_agent.simulator`: the simulator as a process, with vLLM-like flags."""

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from .app import create_app
from .config import (
    DEFAULT_MAX_MODEL_LEN,
    DEFAULT_MAX_NUM_SEQS,
    DEFAULT_PORT,
    DEFAULT_PREFILL_TOKENS_PER_SECOND,
    SIM_VERSION,
    SimConfig,
)
from .prefix_cache import DEFAULT_BLOCK_SIZE, DEFAULT_KV_CACHE_BLOCKS

logger = logging.getLogger("worker_agent.simulator")


def parse_args(argv: list[str]) -> SimConfig:
    parser = argparse.ArgumentParser(prog="python -m worker_agent.simulator", description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name", nargs="+", default=[])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--load-time", type=float, default=0.0, help="seconds before the port listens")
    parser.add_argument("--ttft", type=float, default=0.0,
                        help="seconds before the first token, on top of the prompt's prefill")
    parser.add_argument("--prefill-tokens-per-second", type=float, default=DEFAULT_PREFILL_TOKENS_PER_SECOND,
                        help="uncached prompt tokens computed per second, one prefill at a time (0: no delay)")
    parser.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE, help="tokens per KV-cache block")
    parser.add_argument("--num-gpu-blocks-override", type=int, default=DEFAULT_KV_CACHE_BLOCKS,
                        help="KV-cache capacity in blocks (what vLLM computes from the GPU's memory)")
    parser.add_argument("--tokens-per-second", type=float, default=0.0, help="0 means no delay")
    parser.add_argument("--max-num-seqs", type=int, default=DEFAULT_MAX_NUM_SEQS)
    parser.add_argument("--max-model-len", type=int, default=DEFAULT_MAX_MODEL_LEN)
    parser.add_argument("--dead-file", default=None, help="while this file exists, /health answers 503")
    args = parser.parse_args(argv)
    return SimConfig(
        model=args.model,
        served_model_names=args.served_model_name,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        load_time_s=args.load_time,
        ttft_s=args.ttft,
        prefill_tokens_per_second=args.prefill_tokens_per_second,
        enable_prefix_caching=args.enable_prefix_caching,
        block_size=args.block_size,
        kv_cache_blocks=args.num_gpu_blocks_override,
        tokens_per_second=args.tokens_per_second,
        max_num_seqs=args.max_num_seqs,
        max_model_len=args.max_model_len,
        dead_file=args.dead_file,
    )


async def serve(config: SimConfig) -> None:
    """Load (the port stays closed, as vLLM's does), listen, and stop cleanly on SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("vLLM API server version %s", SIM_VERSION)
    logger.info("Loading model %s (simulated, %.1f s)", config.model, config.load_time_s)
    if config.load_time_s > 0:
        try:
            await asyncio.wait_for(stop.wait(), timeout=config.load_time_s)
        except TimeoutError:
            pass  # loading finished
    if stop.is_set():
        return
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port).start()
    logger.info("Starting vLLM API server on http://%s:%d", config.host, config.port)
    logger.info("Application startup complete.")
    await stop.wait()
    logger.info("Shutting down")
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    # Line-buffered so that a supervising agent sees each log line as it is written.
    sys.stdout.reconfigure(line_buffering=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(asctime)s %(message)s", stream=sys.stdout)
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
