"""A loopback fake of the Scaleway Instance and Block Storage APIs, for tests that drive the real SDK.

It listens on 127.0.0.1 (a free port) and answers in the JSON shapes the SDK's `unmarshal_*` functions
parse (checked against the recorded real exchanges shipped in the SDK wheel by
providers/tests/test_scaleway_contract.py). Point a ScalewayProvider at it with `api_url=fake.url`, or
use `fake.provider()`.

What it serves (per zone): servers (create, get, list with page/per_page/tags and x-total-count, delete,
actions with a state progression, user data), security groups (found by name or tags) and their rules
(listed, set, added one by one; protocols written "TCP" as Scaleway writes them), server types with their
volume constraints and availability, Instance volumes, Block Storage (API v1) volumes.

It refuses what Scaleway refuses, in Scaleway's error shapes: a local (`l_ssd`) volume on a type that allows
none (every GPU type but RENDER-S: `volumes_constraint` 0/0), local volumes beyond the type's total, a block
volume outside 5 GB - 10 TB.

Controls for tests: `fail_next` (answer the next matching request with a status, body, content type and
headers), `throttle_next` (a 429 with Retry-After), `hang_next` (hold the next matching request for N
seconds), `fall_back_after_power_on` (the next power-ons end in `stopped`, as when stock runs out after a
power-on), `transition_s` (how long starting/stopping last; 0 settles them at the next request), the catalog
(`set_price`, `set_availability`, `withdraw`, `add_server_type`), and inspection (`servers`,
`block_volumes`, `local_volumes`, `security_groups`, `rules`, `user_data`, `requests`).

    with FakeScaleway() as fake:
        provider = fake.provider()

or the `fake_scaleway` pytest fixture (import it into a test module or a conftest).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

TEST_ACCESS_KEY = "SCWXXXXXXXXXXXXXXXXX"
TEST_SECRET_KEY = "1e6a8d6f-3b0c-4c4e-9a57-2f1f8b9c2d11"
TEST_PROJECT_ID = "5b1f2d3e-7c4a-4e8b-9d0f-a1b2c3d4e5f6"
TEST_CONTROL_PLANE_CIDR = "203.0.113.0/24"  # TEST-NET-3 (RFC 5737)

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100
# serve_forever checks for shutdown this often: short, so stopping the fake takes no noticeable time.
POLL_INTERVAL_S = 0.05
GIB = 2**30

OUT_OF_STOCK = {"type": "out_of_stock", "resource": "instance_server", "message": "out of stock"}
QUOTAS_EXCEEDED = {
    "type": "quotas_exceeded",
    "message": "quota(s) exceeded for this resource",
    "details": [{"resource": "instance_gpu_l40s", "quota": 1, "current": 1, "project_id": TEST_PROJECT_ID}],
}
HTML_BAD_GATEWAY = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"

IMAGES = {
    "ubuntu_noble_gpu_os_13_nvidia": ("741cfd27-a822-4c82-b80f-973b562743ad", "Ubuntu Noble GPU OS 13 (Nvidia)"),
    "ubuntu_noble_gpu_os_12": ("61916874-cf88-417d-83e8-c7933b848c6a", "Ubuntu Noble GPU OS 12"),
    "ubuntu_noble": ("607b12c2-685d-45f7-905f-57bc23863834", "Ubuntu 24.04 Noble Numbat"),
}

# code: (ncpus, ram GiB, gpus, gpu name, GiB per GPU, EUR per hour, zones)
_PARIS_2_WARSAW_2 = ("fr-par-2", "pl-waw-2")
_ALL_ZONES = ("fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3", "pl-waw-1", "pl-waw-2")
SERVER_TYPES = {
    "L4-1-24G": (8, 48, 1, "L4", 24, 0.7875, _PARIS_2_WARSAW_2),
    "L4-2-24G": (16, 96, 2, "L4", 24, 1.575, _PARIS_2_WARSAW_2),
    "L4-4-24G": (32, 192, 4, "L4", 24, 3.15, _PARIS_2_WARSAW_2),
    "L4-8-24G": (64, 384, 8, "L4", 24, 6.30, _PARIS_2_WARSAW_2),
    "L40S-1-48G": (8, 96, 1, "L40S", 48, 1.4699, _PARIS_2_WARSAW_2),
    "L40S-2-48G": (16, 192, 2, "L40S", 48, 2.9398, _PARIS_2_WARSAW_2),
    "L40S-4-48G": (32, 384, 4, "L40S", 48, 5.8797, _PARIS_2_WARSAW_2),
    "L40S-8-48G": (64, 768, 8, "L40S", 48, 11.7593, _PARIS_2_WARSAW_2),
    "H100-1-80G": (24, 240, 1, "H100-PCIe", 80, 2.8665, _PARIS_2_WARSAW_2),
    "H100-2-80G": (48, 480, 2, "H100-PCIe", 80, 5.733, _PARIS_2_WARSAW_2),
    "H100-SXM-2-80G": (32, 240, 2, "H100-SXM", 80, 6.6198, ("fr-par-2",)),
    "H100-SXM-4-80G": (64, 480, 4, "H100-SXM", 80, 12.6654, ("fr-par-2",)),
    "H100-SXM-8-80G": (128, 960, 8, "H100-SXM", 80, 25.3308, ("fr-par-2",)),
    "B300-SXM-8-288G": (224, 3840, 8, "B300-SXM", 288, 60.0, ("fr-par-2",)),
    "RENDER-S": (10, 42, 1, "P100", 16, 1.221, ("fr-par-1",)),
    "GPU-3070-S": (8, 16, 1, "RTX-3070", 8, 0.76, ("fr-par-2",)),
    "DEV1-S": (2, 2, 0, "", 0, 0.008976, _ALL_ZONES),
    "PLAY2-NANO": (2, 4, 0, "", 0, 0.02754, _ALL_ZONES),
}

GB = 10**9
# Local volumes a type accepts: (`volumes_constraint` min, max) for their total and (`per_volume_constraint.l_ssd`
# min, max) for each, in bytes, as Scaleway's products/servers answered on 2026-10-01. GPU types take none (their
# root volume is block storage); RENDER-S and the CPU types do. Types not listed take none.
LOCAL_VOLUMES = {
    "RENDER-S": ((0, 400 * GB), (1 * GB, 800 * GB)),
    "DEV1-S": ((0, 20 * GB), (1 * GB, 800 * GB)),
}
NO_LOCAL_VOLUMES = ((0, 0), (0, 0))
BLOCK_VOLUME_SIZE = (5 * GB, 10_000 * GB)  # Block Storage: 5 GB to 10 TB
# What `state_detail` says of a server that stock ran out under after its power-on (the fake's wording).
FALLBACK_DETAIL = "stopped: out of stock"

# What each state allows, as the API lists it in `allowed_actions`.
ALLOWED_ACTIONS = {
    "stopped": ["poweron", "backup"],
    "stopped in place": ["poweron", "poweroff", "terminate", "backup"],
    "starting": [],
    "running": ["poweroff", "terminate", "reboot", "stop_in_place", "backup"],
    "stopping": [],
    "locked": [],
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def error_body(kind: str, message: str, **extra) -> dict:
    return {"type": kind, "message": message, **extra}


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def _not_found(what: str, resource_id: str) -> ApiError:
    return ApiError(404, error_body("unknown_resource", f'{what} "{resource_id}" not found'))


@dataclass
class Fault:
    pattern: re.Pattern
    method: str | None
    status: int = 0
    body: bytes = b""
    content_type: str = "application/json"
    hang_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, the auth token left out

    def json(self):
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    status: int
    body: object = None  # dict -> JSON, bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class FakeScaleway:
    def __init__(self, *, secret_key: str = TEST_SECRET_KEY, transition_s: float = 0.0):
        self.secret_key = secret_key
        self.transition_s = transition_s
        self.servers: dict[str, dict] = {}  # id -> the API's JSON object
        self.user_data: dict[str, dict[str, bytes]] = {}  # server id -> key -> content
        self.block_volumes: dict[str, dict] = {}
        self.local_volumes: dict[str, dict] = {}
        self.security_groups: dict[str, dict] = {}
        self.rules: dict[str, list[dict]] = {}  # security group id -> rules
        self.requests: list[RecordedRequest] = []
        self.server_types = {code: list(spec) for code, spec in SERVER_TYPES.items()}
        self.availability: dict[tuple[str, str], str] = {}  # (zone, code) -> scarce | shortage
        self._pending: dict[str, tuple[float, str]] = {}  # server id -> (when, what happens then)
        self._fallbacks = 0  # the next power-ons that end in `stopped`
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._ip_serial = 0
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        zone = r"/instance/v1/zones/(?P<zone>[^/]+)"
        server = zone + r"/servers/(?P<sid>[^/]+)"
        # Block Storage API v1 (what Inventiv uses) and v1alpha1 (what the SDK's recordings were made with).
        block = r"/block/(?P<version>v1|v1alpha1)/zones/(?P<zone>[^/]+)"
        self._routes = [
            ("GET", zone + r"/servers", self._list_servers),
            ("POST", zone + r"/servers", self._create_server),
            ("GET", server, self._get_server),
            ("DELETE", server, self._delete_server),
            ("POST", server + r"/action", self._server_action),
            ("GET", server + r"/user_data", self._list_user_data),
            ("GET", server + r"/user_data/(?P<key>[^/]+)", self._get_user_data),
            ("PATCH", server + r"/user_data/(?P<key>[^/]+)", self._set_user_data),
            ("DELETE", server + r"/user_data/(?P<key>[^/]+)", self._delete_user_data),
            ("GET", zone + r"/security_groups", self._list_security_groups),
            ("POST", zone + r"/security_groups", self._create_security_group),
            ("GET", zone + r"/security_groups/(?P<gid>[^/]+)/rules", self._list_rules),
            ("PUT", zone + r"/security_groups/(?P<gid>[^/]+)/rules", self._set_rules),
            ("POST", zone + r"/security_groups/(?P<gid>[^/]+)/rules", self._create_rule),
            ("GET", zone + r"/products/servers", self._list_server_types),
            ("GET", zone + r"/products/servers/availability", self._availability),
            ("GET", zone + r"/volumes", self._list_local_volumes),
            ("GET", zone + r"/volumes/(?P<vid>[^/]+)", self._get_local_volume),
            ("PATCH", zone + r"/volumes/(?P<vid>[^/]+)", self._update_local_volume),
            ("DELETE", zone + r"/volumes/(?P<vid>[^/]+)", self._delete_local_volume),
            ("GET", block + r"/volumes", self._list_block_volumes),
            ("GET", block + r"/volumes/(?P<vid>[^/]+)", self._get_block_volume),
            ("PATCH", block + r"/volumes/(?P<vid>[^/]+)", self._update_block_volume),
            ("DELETE", block + r"/volumes/(?P<vid>[^/]+)", self._delete_block_volume),
        ]
        self._routes = [(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in self._routes]

    # --- lifecycle ---

    def start(self) -> FakeScaleway:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self._http.block_on_close = False
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases requests held by hang_next
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._thread.join()
            self._http = None

    def __enter__(self) -> FakeScaleway:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def provider(self, **options):
        """A ScalewayProvider pointed at this fake with valid test credentials."""
        from providers.scaleway import ScalewayProvider

        settings = {
            "access_key": TEST_ACCESS_KEY,
            "secret_key": self.secret_key,
            "project_id": TEST_PROJECT_ID,
            "api_url": self.url,
            # Workers admit the control plane only; tests name an address range of the documentation's.
            "control_plane_cidrs": (TEST_CONTROL_PLANE_CIDR,),
            **options,
        }
        return ScalewayProvider(**settings)

    # --- controls ---

    def fail_next(self, path_regex: str, *, status: int, body=None, content_type: str = "application/json",
                  method: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Answer the next request whose path matches `path_regex` with `status` and `body` (dict: JSON)."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        with self._lock:
            self._faults.append(Fault(re.compile(path_regex), method, status, raw, content_type, headers=headers or {}))

    def throttle_next(self, path_regex: str, *, retry_after_s: int, method: str | None = None) -> None:
        """Answer the next matching request as Scaleway's rate limiter does: 429 with Retry-After."""
        body = error_body("too_many_requests", "too many requests")
        self.fail_next(path_regex, status=429, body=body, method=method, headers={"Retry-After": str(retry_after_s)})

    def fall_back_after_power_on(self, times: int = 1) -> None:
        """The next `times` power-ons start the server, which then falls back to `stopped` (stock ran out)."""
        with self._lock:
            self._fallbacks += times

    def hang_next(self, path_regex: str, seconds: float, *, method: str | None = None) -> None:
        """Hold the next request whose path matches for `seconds` before answering it normally."""
        with self._lock:
            self._faults.append(Fault(re.compile(path_regex), method, hang_s=seconds))

    def set_price(self, code: str, hourly_price: float) -> None:
        self.server_types[code][5] = hourly_price

    def set_availability(self, zone: str, code: str, availability: str) -> None:
        self.availability[(zone, code)] = availability

    def withdraw(self, zone: str, code: str) -> None:
        """Stop selling `code` in `zone`."""
        self.server_types[code][6] = tuple(z for z in self.server_types[code][6] if z != zone)

    def add_server_type(self, code: str, *, ncpus: int, ram_gib: int, gpus: int, gpu_name: str,
                        gpu_memory_gib: int, hourly_price: float, zones: tuple[str, ...]) -> None:
        self.server_types[code] = [ncpus, ram_gib, gpus, gpu_name, gpu_memory_gib, hourly_price, tuple(zones)]

    def servers_tagged(self, tag: str) -> list[dict]:
        with self._lock:
            self._settle()
            return [server for server in self.servers.values() if tag in server["tags"]]

    def server(self, server_id: str) -> dict | None:
        with self._lock:
            self._settle()
            return self.servers.get(server_id)

    def requests_to(self, path_regex: str, *, method: str | None = None) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if pattern.search(r.path) and (method is None or r.method == method)]

    # --- HTTP plumbing ---

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        token = headers.pop("x-auth-token", None)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, body, headers))
            fault = next(
                (f for f in self._faults if f.pattern.search(path) and f.method in (None, method)), None
            )
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None and fault.hang_s:
            if self._stopping.wait(fault.hang_s):
                return Response(503, error_body("unavailable", "the fake is stopping"))
        elif fault is not None:
            return Response(fault.status, fault.body, content_type=fault.content_type, headers=fault.headers)
        if token != self.secret_key:
            return Response(401, {"type": "denied_authentication", "method": "api_key", "reason": "not_found",
                                  "message": "authentication is denied"})
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                with self._lock:
                    self._settle()
                    try:
                        return handler(query=query, body=body, **match.groupdict())
                    except ApiError as error:
                        return Response(error.status, error.body)
        return Response(404, error_body("not_found", f"no route for {method} {path}"))

    # --- state progression ---

    def _settle(self) -> None:
        """Apply the state changes whose time has come (starting -> running, stopping -> stopped or gone)."""
        now = time.monotonic()
        for server_id, (when, outcome) in list(self._pending.items()):
            if when > now:
                continue
            del self._pending[server_id]
            server = self.servers[server_id]
            if outcome == "running":
                self._set_state(server, "running")
                if server["dynamic_ip_required"]:
                    self._attach_ip(server)
            elif outcome == "stopped":
                self._set_state(server, "stopped")
                self._release_ip(server)
            elif outcome == "terminated":
                self._remove_server(server, delete_local_volumes=True)
            elif outcome == "fallback":
                self._set_state(server, "stopped")
                server["state_detail"] = FALLBACK_DETAIL
                self._release_ip(server)

    def _schedule(self, server: dict, transient_state: str, outcome: str) -> None:
        self._set_state(server, transient_state)
        self._pending[server["id"]] = (time.monotonic() + self.transition_s, outcome)

    def _set_state(self, server: dict, state: str) -> None:
        server["state"] = state
        server["allowed_actions"] = list(ALLOWED_ACTIONS[state])
        server["modification_date"] = _now()

    def _attach_ip(self, server: dict) -> None:
        self._ip_serial += 1
        ip = {
            "id": str(uuid.uuid4()),
            "address": f"51.15.{self._ip_serial // 250}.{self._ip_serial % 250 + 2}",
            "gateway": "62.210.0.1",
            "netmask": "32",
            "family": "inet",
            "dynamic": True,
            "provisioning_mode": "dhcp",
            "tags": [],
            "ipam_id": str(uuid.uuid4()),
            "state": "attached",
        }
        server["public_ip"] = ip
        server["public_ips"] = [ip]

    def _release_ip(self, server: dict) -> None:
        server["public_ip"] = None
        server["public_ips"] = []

    def _remove_server(self, server: dict, *, delete_local_volumes: bool) -> None:
        """The server goes; block volumes are detached, local volumes deleted (terminate) or detached."""
        for volume in server["volumes"].values():
            if volume["volume_type"] == "sbs_volume":
                block = self.block_volumes.get(volume["id"])
                if block is not None:
                    block.update(references=[], status="available", last_detached_at=_now(), updated_at=_now())
            elif delete_local_volumes:
                self.local_volumes.pop(volume["id"], None)
            elif volume["id"] in self.local_volumes:
                self.local_volumes[volume["id"]]["server"] = None
        for group in self.security_groups.values():
            group["servers"] = [s for s in group["servers"] if s["id"] != server["id"]]
        self.servers.pop(server["id"], None)
        self.user_data.pop(server["id"], None)
        self._pending.pop(server["id"], None)

    # --- servers ---

    def _find_server(self, zone: str, server_id: str) -> dict:
        server = self.servers.get(server_id)
        if server is None or server["zone"] != zone:
            raise _not_found("instance", server_id)
        return server

    def _list_servers(self, *, zone, query, body):
        servers = [s for s in self.servers.values() if s["zone"] == zone]
        servers = _filter_project(servers, query, "project")
        if query.get("tags"):
            wanted = [tag for tag in query["tags"][0].split(",") if tag]
            servers = [s for s in servers if all(tag in s["tags"] for tag in wanted)]
        if query.get("name"):
            servers = [s for s in servers if query["name"][0] in s["name"]]
        servers.sort(key=lambda s: s["creation_date"], reverse=True)  # the API lists the newest first
        page, total = _paginate(servers, query)
        return Response(200, {"servers": page}, headers={"x-total-count": str(total)})

    def _create_server(self, *, zone, query, body):
        request = json.loads(body or b"{}")
        code = request.get("commercial_type")
        if code not in self.server_types or zone not in self.server_types[code][6]:
            raise ApiError(400, error_body("invalid_request_error", f"{code} is not available in {zone}"))
        image = self._image(request.get("image"), zone)
        self._check_volumes(code, request.get("volumes") or {})
        server_id = str(uuid.uuid4())
        now = _now()
        group = self._security_group_for(zone, request.get("security_group"), request.get("project"))
        server = {
            "id": server_id,
            "name": request.get("name", ""),
            "arch": "x86_64",
            "commercial_type": code,
            "boot_type": request.get("boot_type", "local"),
            "organization": request.get("project", TEST_PROJECT_ID),
            "project": request.get("project", TEST_PROJECT_ID),
            "hostname": request.get("name", ""),
            "image": image,
            "volumes": {},
            "tags": list(request.get("tags") or []),
            "state": "stopped",
            "protected": bool(request.get("protected", False)),
            "state_detail": "",
            "public_ip": None,
            "public_ips": [],
            "mac_address": "de:00:00:" + ":".join(f"{b:02x}" for b in uuid.UUID(server_id).bytes[:3]),
            "routed_ip_enabled": True,
            "ipv6": None,
            "extra_networks": [],
            "dynamic_ip_required": bool(request.get("dynamic_ip_required", True)),
            "enable_ipv6": False,
            "private_ip": None,
            "creation_date": now,
            "modification_date": now,
            "bootscript": None,
            "security_group": {"id": group["id"], "name": group["name"]},
            "location": None,
            "maintenances": [],
            "allowed_actions": list(ALLOWED_ACTIONS["stopped"]),
            "placement_group": None,
            "private_nics": [],
            "zone": zone,
            "filesystems": [],
            "end_of_service": False,
        }
        for index, template in (request.get("volumes") or {}).items():
            server["volumes"][index] = self._create_volume(server, template, index=index)
        group["servers"].append({"id": server_id, "name": server["name"]})
        self.servers[server_id] = server
        self.user_data[server_id] = {}
        return Response(201, {"server": server}, headers={"location": f"/instance/v1/zones/{zone}/servers/{server_id}"})

    def _check_volumes(self, code: str, volumes: dict) -> None:
        """Refuse the volumes Scaleway refuses for `code`, in its error shapes."""
        (total_min, total_max), (each_min, each_max) = LOCAL_VOLUMES.get(code, NO_LOCAL_VOLUMES)
        local_total = 0
        for index, template in volumes.items():
            size = int(template.get("size") or 0)
            kind = template.get("volume_type", "l_ssd")
            if kind == "sbs_volume":
                if size and not BLOCK_VOLUME_SIZE[0] <= size <= BLOCK_VOLUME_SIZE[1]:
                    raise ApiError(400, error_body("invalid_arguments", "invalid argument(s)", details=[{
                        "argument_name": f"volumes.{index}.size", "reason": "constraint",
                        "help_message": f"size must be between {BLOCK_VOLUME_SIZE[0]} and {BLOCK_VOLUME_SIZE[1]}",
                    }]))
                continue
            if kind == "l_ssd" and not (each_min <= size <= each_max):
                raise ApiError(400, error_body(
                    "invalid_request_error",
                    f"The size of a local volume of {code} instances must be between {each_min // GB}GB and "
                    f"{each_max // GB}GB",
                ))
            local_total += size
        if local_total and not total_min <= local_total <= total_max:
            raise ApiError(400, error_body(
                "invalid_request_error",
                f"The total volume size of {code} instances must be between {total_min // GB}GB and "
                f"{total_max // GB}GB",
            ))

    def _image(self, label: str | None, zone: str) -> dict | None:
        if not label:
            return None
        if label in IMAGES:
            image_id, name = IMAGES[label]
        else:
            try:
                image_id, name = str(uuid.UUID(label)), "Custom image"
            except ValueError:
                raise ApiError(400, error_body("invalid_request_error", f"image {label} not found")) from None
        return {
            "id": image_id,
            "name": name,
            "organization": TEST_PROJECT_ID,
            "project": TEST_PROJECT_ID,
            "root_volume": {"id": str(uuid.uuid4()), "name": name, "volume_type": "sbs_snapshot", "size": 10 * 10**9},
            "extra_volumes": {},
            "public": True,
            "arch": "x86_64",
            "creation_date": "2025-06-01T10:00:00+00:00",
            "modification_date": "2025-06-01T10:00:00+00:00",
            "default_bootscript": None,
            "from_server": "",
            "state": "available",
            "tags": [],
            "zone": zone,
        }

    def _security_group_for(self, zone: str, group_id: str | None, project: str | None) -> dict:
        if group_id:
            group = self.security_groups.get(group_id)
            if group is None or group["zone"] != zone:
                raise _not_found("Security group", group_id)
            return group
        default = next((g for g in self.security_groups.values() if g["zone"] == zone and g["project_default"]), None)
        return default or self._new_security_group(
            zone, name="Default security group", project=project or TEST_PROJECT_ID, project_default=True
        )

    def _create_volume(self, server: dict, template: dict, *, index: str) -> dict:
        volume_id = str(uuid.uuid4())
        now = _now()
        size = int(template.get("size") or 10 * 10**9)
        name = template.get("name") or f"vol-{volume_id[:8]}"
        if template.get("volume_type") == "sbs_volume":
            self.block_volumes[volume_id] = {
                "id": volume_id,
                "name": name,
                "type": "sbs_5k",
                "size": size,
                "project_id": server["project"],
                "created_at": now,
                "updated_at": now,
                "references": [
                    {
                        "id": str(uuid.uuid4()),
                        "product_resource_type": "instance_server",
                        "product_resource_id": server["id"],
                        "created_at": now,
                        "type": "exclusive",
                        "status": "attached",
                    }
                ],
                "parent_snapshot_id": None,
                "status": "in_use",
                "tags": [],
                "specs": {"perf_iops": 5000, "class": "sbs"},
                "last_detached_at": None,
                "kms_key_id": None,
                "zone": server["zone"],
            }
            return {"boot": index == "0", "volume_type": "sbs_volume", "id": volume_id, "zone": server["zone"]}
        volume = {
            "id": volume_id,
            "name": name,
            "volume_type": template.get("volume_type", "l_ssd"),
            "export_uri": None,
            "organization": server["organization"],
            "project": server["project"],
            "server": {"id": server["id"], "name": server["name"]},
            "size": size,
            "state": "available",
            "creation_date": now,
            "modification_date": now,
            "tags": [],
            "zone": server["zone"],
        }
        self.local_volumes[volume_id] = volume
        return {"boot": index == "0", **volume}

    def _get_server(self, *, zone, sid, query, body):
        return Response(200, {"server": self._find_server(zone, sid)})

    def _delete_server(self, *, zone, sid, query, body):
        server = self._find_server(zone, sid)
        if server["state"] != "stopped":
            raise ApiError(400, error_body("invalid_request_error", "instance should be powered off"))
        self._remove_server(server, delete_local_volumes=False)
        return Response(204)

    def _server_action(self, *, zone, sid, query, body):
        server = self._find_server(zone, sid)
        action = json.loads(body or b"{}").get("action", "poweron")
        if action not in server["allowed_actions"]:
            raise ApiError(
                400, error_body("invalid_request_error", f"action {action} is not allowed in state {server['state']}")
            )
        if action == "poweron" and self._fallbacks:
            self._fallbacks -= 1
            server["state_detail"] = ""
            self._schedule(server, "starting", "fallback")
        elif action == "poweron":
            server["state_detail"] = ""
            self._schedule(server, "starting", "running")
        elif action == "poweroff":
            self._schedule(server, "stopping", "stopped")
        elif action == "terminate":
            self._schedule(server, "stopping", "terminated")
        elif action == "stop_in_place":
            self._set_state(server, "stopped in place")
        now = _now()
        task = {
            "id": str(uuid.uuid4()),
            "description": f"server_{action}",
            "status": "pending",
            "href_from": f"/servers/{sid}/action",
            "href_result": f"/servers/{sid}",
            "started_at": now,
            "terminated_at": None,
            "progress": 0,
            "zone": zone,
        }
        return Response(202, {"task": task})

    def _list_user_data(self, *, zone, sid, query, body):
        self._find_server(zone, sid)
        return Response(200, {"user_data": sorted(self.user_data[sid])})

    def _get_user_data(self, *, zone, sid, key, query, body):
        self._find_server(zone, sid)
        if key not in self.user_data[sid]:
            raise _not_found("user data", key)
        return Response(200, self.user_data[sid][key], content_type="text/plain")

    def _set_user_data(self, *, zone, sid, key, query, body):
        self._find_server(zone, sid)
        self.user_data[sid][key] = body
        return Response(204)

    def _delete_user_data(self, *, zone, sid, key, query, body):
        self._find_server(zone, sid)
        self.user_data[sid].pop(key, None)
        return Response(204)

    # --- security groups ---

    def _new_security_group(self, zone: str, *, name: str, project: str, **fields) -> dict:
        now = _now()
        group = {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": fields.get("description", ""),
            "enable_default_security": fields.get("enable_default_security", True),
            "inbound_default_policy": fields.get("inbound_default_policy", "accept"),
            "outbound_default_policy": fields.get("outbound_default_policy", "accept"),
            "organization": project,
            "project": project,
            "tags": list(fields.get("tags") or []),
            "project_default": bool(fields.get("project_default", False)),
            "servers": [],
            "stateful": bool(fields.get("stateful", True)),
            "state": "available",
            "zone": zone,
            "organization_default": False,
            "creation_date": now,
            "modification_date": now,
        }
        self.security_groups[group["id"]] = group
        self.rules[group["id"]] = []
        return group

    def _list_security_groups(self, *, zone, query, body):
        groups = [g for g in self.security_groups.values() if g["zone"] == zone]
        groups = _filter_project(groups, query, "project")
        if query.get("name"):
            groups = [g for g in groups if query["name"][0] in g["name"]]
        if query.get("tags"):
            wanted = [tag for tag in query["tags"][0].split(",") if tag]
            groups = [g for g in groups if all(tag in g["tags"] for tag in wanted)]
        page, total = _paginate(groups, query)
        return Response(200, {"security_groups": page}, headers={"x-total-count": str(total)})

    def _create_security_group(self, *, zone, query, body):
        request = json.loads(body or b"{}")
        fields = {k: v for k, v in request.items() if k not in ("name", "project", "organization")}
        group = self._new_security_group(
            zone, name=request.get("name", ""), project=request.get("project") or TEST_PROJECT_ID, **fields
        )
        return Response(201, {"security_group": group})

    def _find_group(self, zone: str, group_id: str) -> dict:
        group = self.security_groups.get(group_id)
        if group is None or group["zone"] != zone:
            raise _not_found("Security group", group_id)
        return group

    def _list_rules(self, *, zone, gid, query, body):
        self._find_group(zone, gid)
        page, total = _paginate(self.rules[gid], query)
        return Response(200, {"rules": page}, headers={"x-total-count": str(total)})

    @staticmethod
    def _rule(rule: dict, *, zone: str) -> dict:
        """A rule as Scaleway stores and returns it: the protocol in upper case ("TCP"), whatever was sent."""
        return {
            "id": rule.get("id") or str(uuid.uuid4()),
            "protocol": str(rule["protocol"]).upper(),
            "direction": rule["direction"],
            "action": rule["action"],
            "ip_range": rule["ip_range"],
            "dest_port_from": rule.get("dest_port_from"),
            "dest_port_to": rule.get("dest_port_to"),
            "position": rule["position"],
            "editable": True,
            "zone": zone,
        }

    def _set_rules(self, *, zone, gid, query, body):
        self._find_group(zone, gid)
        rules = [self._rule(rule, zone=zone) for rule in json.loads(body or b"{}").get("rules") or []]
        self.rules[gid] = rules
        return Response(200, {"rules": rules})

    def _create_rule(self, *, zone, gid, query, body):
        self._find_group(zone, gid)
        rule = self._rule(json.loads(body or b"{}"), zone=zone)
        self.rules[gid].append(rule)
        return Response(201, {"rule": rule})

    # --- catalog ---

    def _server_type_json(self, code: str) -> dict:
        ncpus, ram_gib, gpus, gpu_name, gpu_gib, price, _zones = self.server_types[code]
        total, each = LOCAL_VOLUMES.get(code, NO_LOCAL_VOLUMES)
        gpu_info = {"gpu_manufacturer": "NVIDIA", "gpu_name": gpu_name, "gpu_memory": gpu_gib * GIB} if gpus else None
        bandwidth = 2_500_000_000 if gpus else 200_000_000
        return {
            "alt_names": [],
            "arch": "x86_64",
            "ncpus": ncpus,
            "ram": ram_gib * GIB,
            "gpu": gpus,
            "gpu_info": gpu_info,
            "volumes_constraint": {"min_size": total[0], "max_size": total[1]},
            "per_volume_constraint": {"l_ssd": {"min_size": each[0], "max_size": each[1]}},
            "scratch_storage_max_size": 0,
            "scratch_storage_max_volumes_count": 0,
            "monthly_price": round(price * 730, 4),
            "hourly_price": price,
            "capabilities": {"boot_types": ["local", "rescue"], "block_storage": True, "max_file_systems": 2},
            "network": {
                "ipv6_support": True,
                "sum_internal_bandwidth": bandwidth,
                "sum_internet_bandwidth": bandwidth,
                "interfaces": [{"internal_bandwidth": bandwidth, "internet_bandwidth": bandwidth}],
            },
            "block_bandwidth": 1_048_576_000,
            "end_of_service": False,
        }

    def _codes_in(self, zone: str) -> list[str]:
        return sorted(code for code, spec in self.server_types.items() if zone in spec[6])

    def _list_server_types(self, *, zone, query, body):
        page, total = _paginate(self._codes_in(zone), query)
        servers = {code: self._server_type_json(code) for code in page}
        return Response(200, {"servers": servers}, headers={"x-total-count": str(total)})

    def _availability(self, *, zone, query, body):
        page, total = _paginate(self._codes_in(zone), query)
        servers = {code: {"availability": self.availability.get((zone, code), "available")} for code in page}
        return Response(200, {"servers": servers}, headers={"x-total-count": str(total)})

    # --- volumes ---

    def _list_local_volumes(self, *, zone, query, body):
        volumes = [v for v in self.local_volumes.values() if v["zone"] == zone]
        volumes = _filter_project(volumes, query, "project")
        if query.get("tags"):
            wanted = [tag for tag in query["tags"][0].split(",") if tag]
            volumes = [v for v in volumes if all(tag in v["tags"] for tag in wanted)]
        page, total = _paginate(volumes, query)
        return Response(200, {"volumes": page}, headers={"x-total-count": str(total)})

    def _find_local_volume(self, zone: str, volume_id: str) -> dict:
        volume = self.local_volumes.get(volume_id)
        if volume is None or volume["zone"] != zone:
            raise _not_found("Volume", volume_id)
        return volume

    def _get_local_volume(self, *, zone, vid, query, body):
        return Response(200, {"volume": self._find_local_volume(zone, vid)})

    def _update_local_volume(self, *, zone, vid, query, body):
        volume = self._find_local_volume(zone, vid)
        request = json.loads(body or b"{}")
        for key in ("name", "tags", "size"):
            if key in request:
                volume[key] = request[key]
        volume["modification_date"] = _now()
        return Response(200, {"volume": volume})

    def _delete_local_volume(self, *, zone, vid, query, body):
        volume = self._find_local_volume(zone, vid)
        if volume["server"] is not None:
            raise ApiError(400, error_body("invalid_request_error", "a volume attached to a server cannot be deleted"))
        del self.local_volumes[vid]
        return Response(204)

    @staticmethod
    def _block_json(volume: dict, version: str) -> dict:
        """A block volume as the API version shows it (v1 added `kms_key_id`)."""
        return volume if version == "v1" else {k: v for k, v in volume.items() if k != "kms_key_id"}

    def _list_block_volumes(self, *, zone, version, query, body):
        volumes = [v for v in self.block_volumes.values() if v["zone"] == zone]
        volumes = _filter_project(volumes, query, "project_id")
        if query.get("tags"):
            # Block Storage returns volumes carrying any one of the tags asked for.
            volumes = [v for v in volumes if set(query["tags"]) & set(v["tags"])]
        page, total = _paginate(volumes, query, size_param="page_size")
        return Response(200, {"volumes": [self._block_json(v, version) for v in page], "total_count": total})

    def _find_block_volume(self, zone: str, volume_id: str) -> dict:
        volume = self.block_volumes.get(volume_id)
        if volume is None or volume["zone"] != zone:
            raise ApiError(404, {"type": "not_found", "resource": "volume", "resource_id": volume_id,
                                 "message": "resource is not found"})
        return volume

    def _get_block_volume(self, *, zone, version, vid, query, body):
        return Response(200, self._block_json(self._find_block_volume(zone, vid), version))

    def _update_block_volume(self, *, zone, version, vid, query, body):
        volume = self._find_block_volume(zone, vid)
        request = json.loads(body or b"{}")
        for key in ("name", "tags", "size"):
            if request.get(key) is not None:
                volume[key] = request[key]
        volume["updated_at"] = _now()
        return Response(200, self._block_json(volume, version))

    def _delete_block_volume(self, *, zone, version, vid, query, body):
        volume = self._find_block_volume(zone, vid)
        if volume["references"]:
            raise ApiError(412, {"type": "precondition_failed", "precondition": "resource_still_in_use",
                                 "help_message": "the volume is attached", "message": "precondition failed"})
        del self.block_volumes[vid]
        return Response(204)


def _filter_project(items: list[dict], query: dict, key: str) -> list[dict]:
    project = (query.get("project") or query.get("project_id") or [None])[0]
    return [item for item in items if item.get(key) == project] if project else items


def _paginate(items: list, query: dict, *, size_param: str = "per_page") -> tuple[list, int]:
    try:
        page = int((query.get("page") or ["1"])[0])
        size = int((query.get(size_param) or [str(DEFAULT_PER_PAGE)])[0])
    except ValueError:
        raise ApiError(400, error_body("invalid_request_error", "page and page size must be integers")) from None
    if page < 1 or not 1 <= size <= MAX_PER_PAGE:
        raise ApiError(
            400, error_body("invalid_request_error", f"page must be >= 1 and {size_param} between 1 and {MAX_PER_PAGE}")
        )
    start = (page - 1) * size
    return items[start : start + size], len(items)


def _handler_for(fake: FakeScaleway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            response = fake.handle(self.command, self.path, headers, body)
            if isinstance(response.body, (dict, list)):
                payload = json.dumps(response.body).encode()
            else:
                payload = response.body or b""
            try:
                self.send_response(response.status)
                if payload:
                    self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer to

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
            pass  # tests read fake.requests instead of stderr

    return Handler


@pytest.fixture
def fake_scaleway():
    """A running FakeScaleway, stopped after the test."""
    with FakeScaleway() as fake:
        yield fake
