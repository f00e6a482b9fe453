"""Find or start the simulator hub, once per server, even across worker processes.

Under ``python -m`` or Flask's dev server there is one process: it starts a
private hub. Under gunicorn each worker is a process of its own, but the chat
page's requests land on any of them, so all workers must share one hub (one
conversation, one media store). They meet through a small file in the temp
directory, named after the gunicorn master's pid and guarded by a file lock:
the first worker starts the hub in its process and writes the hub's address
and (fake) credentials there; the others read it. If the worker hosting the
hub dies, the next worker that finds the hub unreachable starts a new one on
the same port, so every connector's ``base_url`` stays valid.

Every hub, shared or private, is also listed there, so that another process
given its address (``flask whatsapp send --base-url ...``, or
``WHATSAPP_BASE_URL``) can join it: :func:`find_hub` reads its (fake)
credentials back. The files are this user's only (mode 0600, owner checked).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from ..config import DEFAULT_API_VERSION
from ..testing.webhooks import DEFAULT_PHONE_NUMBER_ID
from .hub import SIMULATOR_PATH, SimulatorHub

logger = logging.getLogger(__name__)

#: Set to share one hub between the processes that carry the same value.
SHARE_ENV = "CEL_WHATSAPP_SIMULATOR_SHARE"


@dataclass(frozen=True, slots=True)
class HubSettings:
    """How to reach a hub, and the (fake) credentials a connector needs for it."""

    root_url: str
    token: str
    app_secret: str
    verify_token: str
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID
    api_version: str = DEFAULT_API_VERSION

    @property
    def base_url(self) -> str:
        """The Graph API root a connector should use."""
        return f"{self.root_url}/{self.api_version}"

    def __repr__(self) -> str:
        return f"HubSettings(root_url={self.root_url!r}, token=***, app_secret=***)"


def fresh_settings(root_url: str = "", api_version: str = DEFAULT_API_VERSION) -> HubSettings:
    """New random credentials (a simulator never uses real ones)."""
    return HubSettings(
        root_url=root_url,
        token="simulator-" + secrets.token_hex(12),
        app_secret=secrets.token_hex(16),
        verify_token=secrets.token_hex(8),
        api_version=api_version,
    )


def default_share_key() -> str | None:
    """The key that groups this server's processes, or ``None`` for a private hub.

    ``CEL_WHATSAPP_SIMULATOR_SHARE`` wins; under gunicorn (which exports
    ``SERVER_SOFTWARE=gunicorn/...``) a worker groups with its master.
    """
    explicit = os.environ.get(SHARE_ENV)
    if explicit:
        return explicit
    if os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        return f"gunicorn-{os.getppid()}"
    return None


class HubLink:
    """This process's way to the simulator hub: its own, or another process's.

    ``share_key=None`` starts a private hub; ``join`` uses the running hub
    those settings describe (see :func:`find_hub`) and never starts one.
    ``hub`` is the hub object when this process hosts it.
    """

    def __init__(
        self,
        share_key: str | None = None,
        *,
        api_version: str = DEFAULT_API_VERSION,
        join: HubSettings | None = None,
    ) -> None:
        self.share_key = share_key
        self.api_version = api_version
        self.hub: SimulatorHub | None = None
        self._host_pid = os.getpid()
        self._joined = join
        self._listing: Path | None = None
        if join is None and share_key is not None and _can_lock():
            self._path: Path | None = _rendezvous_path(share_key)
        else:
            self._path = None
        self.settings = self._connect()

    def __repr__(self) -> str:
        return f"HubLink(share_key={self.share_key!r}, root_url={self.settings.root_url!r})"

    @property
    def hosted_here(self) -> bool:
        """Whether this very process serves the hub (not merely inherited it by fork)."""
        return self.hub is not None and self._host_pid == os.getpid()

    def revive(self) -> bool:
        """Make sure a hub answers at the shared address; return whether one does now."""
        if _alive(self.settings):
            return True
        if self._path is None:
            return False
        self.settings = self._connect()
        return True

    def close(self) -> None:
        """Stop the hub if this process hosts it."""
        if self.hub is not None and self._host_pid != os.getpid():
            # A forked child (gunicorn --preload) inherits the object but not the
            # threads serving it: the hub is still the parent's to stop.
            self.hub = None
            return
        if self.hub is not None:
            self.hub.stop()
            self.hub = None
            if self._listing is not None:
                with contextlib.suppress(OSError):
                    self._listing.unlink()
            if self._path is not None:
                with contextlib.suppress(OSError):
                    recorded = _read(self._path)
                    if recorded is not None and recorded.get("pid") == os.getpid():
                        self._path.unlink()
                        self._path.with_suffix(".lock").unlink()

    # -- election ---------------------------------------------------------------

    def _connect(self) -> HubSettings:
        if self._joined is not None:
            return self._joined
        if self._path is None:
            settings = self._host(fresh_settings(api_version=self.api_version), port=0)
            # Listed by port, so that another process given this address can join.
            self._listing = _rendezvous_path(f"port-{_port_of(settings)}")
            _write(self._listing, _record(settings))
            return settings
        with _locked(self._path.with_suffix(".lock")):
            recorded = _read(self._path)
            if recorded is not None:
                settings = HubSettings(**recorded["settings"])
                if _alive(settings):
                    logger.debug("simulator: using the hub at %s", settings.root_url)
                    return settings
                port = int(recorded.get("port") or 0)
            else:
                settings = fresh_settings(api_version=self.api_version)
                port = 0
            settings = self._host(settings, port=port)
            _write(self._path, _record(settings))
            return settings

    def _host(self, settings: HubSettings, *, port: int) -> HubSettings:
        options: dict[str, Any] = {
            "token": settings.token,
            "app_secret": settings.app_secret,
            "phone_number_id": settings.phone_number_id,
            "api_version": settings.api_version,
        }
        try:
            hub = SimulatorHub(port=port, **options)
        except OSError:
            logger.warning("simulator: port %d is taken; the hub moves to a new port", port)
            hub = SimulatorHub(port=0, **options)
        hub.start()
        self.hub = hub
        self._host_pid = os.getpid()
        atexit.register(self.close)
        logger.info("simulator: hub started at %s (pid %d)", hub.root_url, os.getpid())
        return HubSettings(
            root_url=hub.root_url,
            token=settings.token,
            app_secret=settings.app_secret,
            verify_token=settings.verify_token,
            phone_number_id=settings.phone_number_id,
            api_version=settings.api_version,
        )


def find_hub(url: str) -> HubSettings | None:
    """The running hub at ``url`` (its root or base URL), started by this user; else ``None``.

    Only loopback addresses are looked up. The settings hold the hub's
    (fake) credentials, read from the file it listed itself in.
    """
    split = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = split.port
    except ValueError:
        return None
    if port is None or split.hostname not in _LOOPBACK:
        return None
    for settings in _listed_hubs():
        if _port_of(settings) == port and _alive(settings):
            return settings
    return None


def running_hubs() -> list[HubSettings]:
    """Every hub this user has running on this machine, by port."""
    found = {_port_of(s): s for s in _listed_hubs() if _alive(s)}
    return [found[port] for port in sorted(found)]


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _listed_hubs() -> Iterator[HubSettings]:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for path in sorted(Path(tempfile.gettempdir()).glob(f"cel-whatsapp-simulator-{uid}-*.json")):
        try:
            info = path.stat()
        except OSError:
            continue
        # Another user could plant a file under our name in a shared /tmp.
        if hasattr(os, "getuid") and (info.st_uid != uid or info.st_mode & 0o022):
            logger.warning("simulator: ignoring %s, which is not this user's own", path)
            continue
        recorded = _read(path)
        if recorded is None:
            continue
        if "-port-" in path.name and not _running(recorded.get("pid")):
            # A private hub whose process was killed (no atexit): forget it.
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        try:
            settings = HubSettings(**recorded["settings"])
            _port_of(settings)
        except (TypeError, ValueError, IndexError):
            continue
        yield settings


def _running(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: it exists
    return True


def _record(settings: HubSettings) -> dict[str, Any]:
    return {"settings": asdict(settings), "port": _port_of(settings), "pid": os.getpid()}


def _alive(settings: HubSettings) -> bool:
    if not settings.root_url:
        return False
    session = requests.Session()
    session.trust_env = False
    try:
        response = session.get(
            f"{settings.root_url}{SIMULATOR_PATH}/ping",
            headers={"Authorization": f"Bearer {settings.token}"},
            timeout=(1.0, 3.0),
        )
    except requests.RequestException as exc:
        logger.debug("simulator hub at %s is not answering: %s", settings.root_url, exc)
        return False
    finally:
        session.close()
    return response.status_code == 200


def _port_of(settings: HubSettings) -> int:
    return int(settings.root_url.rsplit(":", 1)[1])


def _can_lock() -> bool:
    # No fcntl on Windows (no gunicorn there either): each process gets its own hub.
    return importlib.util.find_spec("fcntl") is not None


def _rendezvous_path(key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:80]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"cel-whatsapp-simulator-{uid}-{safe}.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.debug("no usable simulator rendezvous file at %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) and isinstance(data.get("settings"), dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    # The credentials are fake, but still only for this user's eyes.
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)
