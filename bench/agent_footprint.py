"""How much CPU and memory the worker agent costs at its production heartbeat interval.

Starts the vLLM-protocol simulator and a tiny stub control plane in this process, then the agent as a
subprocess in `attach` mode (so its figures exclude the engine), heartbeating every 5 s. Samples the
agent's CPU time and RSS with psutil and prints CPU % of one core, peak RSS and heartbeats received.

    .venv/bin/python bench/agent_footprint.py [--duration 60] [--interval 5]
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
from aiohttp import web

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from worker_agent.simulator import AppThread, SimConfig, start_simulator  # noqa: E402

TOKEN = "bench-token"
ENGINE_KEY = "bench-engine-key"
SAMPLE_EVERY_S = 1.0
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stub_control_plane(interval_s: float, heartbeats: list[dict]) -> web.Application:
    async def register(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"heartbeat_interval_s": interval_s})

    async def heartbeat(request: web.Request) -> web.Response:
        heartbeats.append(await request.json())
        return web.json_response({"action": "serve", "heartbeat_interval_s": interval_s})

    app = web.Application()
    app.router.add_post("/api/worker/register", register)
    app.router.add_post("/api/worker/heartbeat", heartbeat)
    return app


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady state to measure")
    parser.add_argument("--interval", type=float, default=5.0, help="heartbeat interval in seconds")
    args = parser.parse_args()

    heartbeats: list[dict] = []
    engine = start_simulator(SimConfig(model="mock-echo", api_key=ENGINE_KEY))
    control_plane = AppThread(stub_control_plane(args.interval, heartbeats)).start()
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVENTIV_")}
    env.update(
        INVENTIV_CONTROL_PLANE_URL=control_plane.url,
        INVENTIV_INSTANCE_ID="bench-1",
        INVENTIV_WORKER_TOKEN=TOKEN,
        INVENTIV_MODEL="mock-echo",
        INVENTIV_ENGINE_API_KEY=ENGINE_KEY,
        INVENTIV_ENGINE_MODE="attach",
        INVENTIV_ENGINE_PORT=str(engine.port),
        INVENTIV_AGENT_HOST="127.0.0.1",
        INVENTIV_AGENT_PORT=str(free_port()),
        INVENTIV_HEARTBEAT_INTERVAL_S=str(args.interval),
    )
    agent = subprocess.Popen([sys.executable, "-m", "worker_agent"], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process = psutil.Process(agent.pid)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not heartbeats:
            if time.monotonic() > deadline or agent.poll() is not None:
                raise SystemExit("the agent sent no heartbeat")
            time.sleep(0.1)
        startup_cpu = cpu_seconds(process)
        peak_rss = process.memory_info().rss
        started, beats_before = time.monotonic(), len(heartbeats)
        while time.monotonic() - started < args.duration:
            time.sleep(SAMPLE_EVERY_S)
            peak_rss = max(peak_rss, process.memory_info().rss)
        elapsed = time.monotonic() - started
        steady_cpu = cpu_seconds(process) - startup_cpu
        received = len(heartbeats) - beats_before
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        control_plane.stop()
        engine.stop()
    print(f"agent footprint over {elapsed:.0f} s at a {args.interval:g} s heartbeat interval (attach mode)")
    print(f"  cpu: {100 * steady_cpu / elapsed:.2f} % of one core (startup used {startup_cpu:.2f} s cpu)")
    print(f"  peak rss: {peak_rss / MIB:.1f} MB")
    print(f"  heartbeats received: {received} (expected ~{elapsed / args.interval:.0f}); exit code {agent.returncode}")
    last = heartbeats[-1]
    print(f"  last heartbeat: status {last['status']}, {len(last['gpus'])} GPU(s) reported")
    for gpu in last["gpus"]:
        print(f"    {gpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
