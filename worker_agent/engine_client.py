"""What the agent asks its engine over HTTP: health, served models, version, metrics."""

from dataclasses import dataclass

import aiohttp

PROBE_TIMEOUT_S = 2.0
METRICS_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None = None
    engine_dead: bool = False  # /health answered 503: the engine process lives but its core died


class EngineClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, api_key: str | None, model: str) -> None:
        self.session = session
        self.base_url = base_url
        self.model = model
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def readiness(self) -> Readiness:
        """Ready when /health is 200 and /v1/models lists the served model name."""
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        try:
            async with self.session.get(f"{self.base_url}/health", timeout=timeout) as response:
                await response.read()
                if response.status == 503:
                    return Readiness(False, "engine /health answered 503: the engine is dead", engine_dead=True)
                if response.status != 200:
                    return Readiness(False, f"engine /health answered {response.status}")
            async with self.session.get(f"{self.base_url}/v1/models", headers=self._auth, timeout=timeout) as response:
                if response.status != 200:
                    return Readiness(False, f"engine /v1/models answered {response.status}")
                listing = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Readiness(False, f"engine not answering yet ({type(exc).__name__})")
        except ValueError:
            return Readiness(False, "engine /v1/models answered something that is not JSON")
        cards = listing.get("data") if isinstance(listing, dict) else None
        served = [card.get("id") for card in cards or [] if isinstance(card, dict)]
        if self.model not in served:
            return Readiness(False, f"engine serves {served}, not {self.model!r}")
        return Readiness(True)

    async def version(self) -> str | None:
        try:
            async with self.session.get(
                f"{self.base_url}/version", timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
            ) as response:
                if response.status != 200:
                    return None
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        version = body.get("version") if isinstance(body, dict) else None
        return str(version) if version is not None else None

    async def metrics_text(self) -> str | None:
        try:
            async with self.session.get(
                f"{self.base_url}/metrics", timeout=aiohttp.ClientTimeout(total=METRICS_TIMEOUT_S)
            ) as response:
                if response.status != 200:
                    return None
                return await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
