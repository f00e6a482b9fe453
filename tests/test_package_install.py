"""The package as users get it: a wheel and an sdist, installed into fresh virtual environments.

``python -m build`` makes the sdist, then the wheel from the sdist (so a file
missing from the sdist fails here). The wheel goes into a fresh venv with
``--no-deps``; its dependencies come from this environment's site-packages
through a ``.pth`` file (fast and offline; the package itself must come
from the wheel, which the smoke test checks). From there, outside the
checkout and with ``python -I``: a smoke import, then a deployment round trip
as docs/deployment.rst describes it: ``python -m
cel_whatsapp.testing.fake_graph``, gunicorn with ``-c
python:cel_whatsapp.gunicorn_conf`` serving an app configured only by the
environment, a signed webhook posted over HTTP, and the answer read back
from the fake's output.
"""

from __future__ import annotations

import configparser
import email.parser
import json
import os
import queue
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from cel_whatsapp.core.signature import sign
from cel_whatsapp.testing import encode, text_webhook
from cel_whatsapp.testing.fake_graph.__main__ import READY

from .components import ROOT, free_port, require, skip_or_fail, wait_for_port

pytestmark = pytest.mark.integration

NAME = "cel_whatsapp"
VERSION = configparser.ConfigParser()
VERSION.read(ROOT / "setup.cfg")
EXPECTED_VERSION = VERSION["metadata"]["version"]
# Not part of a source release.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.py[cod]",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
)
APP_MODULE = """
from flask import Flask
from cel_whatsapp import WhatsappConnector


def create_app():
    app = Flask(__name__)
    # Every setting from the environment (WHATSAPP_*), as in a deployment.
    WhatsappConnector(assistant=lambda m: f"pong: {m.text}", read_receipts=False).init_app(app)
    return app
"""
SMOKE = """
import importlib.metadata, importlib.resources, json, sys
import cel_whatsapp
from cel_whatsapp import Message, StreamMode, WhatsappConnector
from cel_whatsapp.simulator import Simulator
from cel_whatsapp.testing import FakeGraphAPI
import cel_whatsapp.gunicorn_conf as conf
files = importlib.resources.files("cel_whatsapp")
print(json.dumps({
    "file": cel_whatsapp.__file__,
    "version": cel_whatsapp.__version__,
    "metadata_version": importlib.metadata.version("cel_whatsapp"),
    "typed": files.joinpath("py.typed").is_file(),
    "page": files.joinpath("simulator", "page-assets", "index.html").is_file(),
    "hooks": all(callable(getattr(conf, h)) for h in ("post_worker_init", "worker_exit")),
    "plugin": [e.value for e in importlib.metadata.entry_points(group="pytest11")
               if e.name == "cel_whatsapp"],
}))
"""


def _copy_source(where: Path) -> Path:
    """The checkout's files (committed or not) without build output, caches or venvs."""
    shutil.copytree(ROOT, where, ignore=_NOT_SOURCE)
    return where


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, built by ``python -m build`` from a copy of the source."""
    try:
        import build  # noqa: F401
    except ImportError:
        skip_or_fail("the build package is not installed (the test extra has it)")
    base = tmp_path_factory.mktemp("dist")
    source = _copy_source(base / "source")
    out = base / "out"
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return sdist, wheel


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH (which would shadow the installed package)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME")
        and not key.startswith("WHATSAPP_")
        and not key.lower().endswith("_proxy")
    }
    return {**env, **extra}


def _fresh_venv(where: Path) -> Path:
    """A venv with nothing in it but a ``.pth`` to this environment's site-packages."""
    subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60
    )
    python = where / "bin" / "python"
    site = subprocess.run(  # noqa: S603 - the venv's own interpreter
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    # After the venv's own site-packages on sys.path: the package installed
    # there wins over the editable install of this environment.
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return python


def _pip_install(python: Path, *target: str | Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            *map(str, target),
        ],
        capture_output=True,
        text=True,
        env=_clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _smoke(python: Path, venv: Path, cwd: Path) -> None:
    """Import the package in ``python``, which must find it in ``venv`` (or a checkout)."""
    result = subprocess.run(  # noqa: S603 - the venv's own interpreter
        [str(python), "-I", "-c", SMOKE],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert Path(found["file"]).resolve().is_relative_to(venv.resolve()), found["file"]
    assert found["version"] == found["metadata_version"] == EXPECTED_VERSION
    assert found["typed"] and found["page"] and found["hooks"]
    assert found["plugin"] == ["cel_whatsapp.testing.pytest_plugin"]


def test_the_metadata_is_complete(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.parser.Parser().parsestr(
            archive.read(f"{NAME}-{EXPECTED_VERSION}.dist-info/METADATA").decode()
        )
    assert metadata["Name"] == NAME and metadata["Version"] == EXPECTED_VERSION
    assert metadata["License"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Description-Content-Type"] == "text/x-rst"
    classifiers = metadata.get_all("Classifier")
    for classifier in ("Framework :: Flask", "Typing :: Typed", "Development Status :: 3 - Alpha"):
        assert classifier in classifiers
    assert {
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.12",
    } <= set(classifiers)
    extras = set(metadata.get_all("Provides-Extra"))
    assert {"redis", "celery", "metrics", "test"} <= extras
    requires = metadata.get_all("Requires-Dist")
    assert 'celery[redis]>=5.4; extra == "celery"' in requires
    assert 'prometheus_client>=0.20; extra == "metrics"' in requires
    assert 'redis>=5.0; extra == "redis"' in requires
    assert {"flask>=2.3", "requests>=2.32.4", "gunicorn>=21.2", "marshmallow>=3.19"} <= set(
        requires
    )
    # The long description is the README, and PyPI's renderer accepts it.
    description = metadata.get_payload()
    assert description.strip() == (ROOT / "README.rst").read_text(encoding="utf-8").strip()
    try:
        from readme_renderer.rst import render
    except ImportError:
        skip_or_fail("readme_renderer is not installed (the test extra has it)")
    assert render(description, stream=sys.stderr) is not None, "README.rst does not render"
    # The wheel holds the package, every file of it, and nothing else.
    source = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / NAME).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    packaged = {name for name in names if not name.startswith(f"{NAME}-{EXPECTED_VERSION}.")}
    assert packaged == source


def test_the_sdist_is_the_whole_source(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for expected in (
        "README.rst",
        "setup.cfg",
        "pyproject.toml",
        "MANIFEST.in",
        "docs/conf.py",
        "docs/index.rst",
        "tests/conftest.py",
        "tests/data/text.json",
        "sample_app/__init__.py",
        "sample_app/static/picture.png",
        "sample_app/gunicorn.conf.py",
        "cel_whatsapp/simulator/page-assets/index.html",
    ):
        assert expected in names, expected
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_the_sdist_installs_into_a_fresh_venv(dists: tuple[Path, Path], tmp_path: Path) -> None:
    sdist, _ = dists
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    _pip_install(python, sdist)
    _smoke(python, venv, tmp_path)


def test_a_git_url_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    """Installation: ``pip install "cel_whatsapp @ git+$REPO@main"`` (here a local repository)."""
    git = require("git", "to install from a git URL")
    repository = _copy_source(tmp_path / "repository")
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm", "x"],
    ):
        subprocess.run([git, *command], cwd=repository, check=True, timeout=60)  # noqa: S603
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    # file://localhost/...: pip before 24 refuses a git+file URL with an empty host.
    url = f"git+file://localhost{repository.resolve().as_posix()}@main"
    _pip_install(python, f"cel_whatsapp[redis] @ {url}")
    _smoke(python, venv, tmp_path)


def test_a_checkout_installs_editable(tmp_path: Path) -> None:
    """Installation: ``pip install -e ./cel_whatsapp``: the package is then the checkout's."""
    checkout = _copy_source(tmp_path / "cel_whatsapp")
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    _pip_install(python, "-e", f"{checkout}[redis]")
    _smoke(python, checkout, tmp_path)


def test_the_wheel_installs_and_answers_a_signed_webhook_under_gunicorn(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = dists
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    _pip_install(python, wheel)
    _smoke(python, venv, tmp_path)

    (tmp_path / "roundtrip_app.py").write_text(APP_MODULE)
    secret, token, verify = "app-secret", "any-token", "verify-me"
    with _fake_graph(python, token, tmp_path) as (base_url, lines):
        port = free_port()
        env = _clean_env(
            WHATSAPP_TOKEN=token,
            WHATSAPP_PHONE_NUMBER_ID="106540352242922",
            WHATSAPP_VERIFY_TOKEN=verify,
            WHATSAPP_APP_SECRET=secret,
            WHATSAPP_BASE_URL=base_url,
        )
        with _served(python, port, env, tmp_path) as site, requests.Session() as session:
            session.trust_env = False
            verified = session.get(
                f"{site}/whatsapp",
                params={"hub.mode": "subscribe", "hub.verify_token": verify, "hub.challenge": "42"},
                timeout=10,
            )
            assert (verified.status_code, verified.text) == (200, "42")
            raw = encode(text_webhook("ping", id="wamid.WHEEL1"))
            answer = session.post(
                f"{site}/whatsapp",
                data=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(raw, secret),
                },
                timeout=10,
            )
            assert answer.status_code == 200
            forged = session.post(
                f"{site}/whatsapp",
                data=raw,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=0"},
                timeout=10,
            )
            assert forged.status_code == 403  # refused: not signed with the app secret
            line = _next_line(lines, lambda text: "/messages 200 " in text)
    sent = json.loads(line.split(" 200 ", 1)[1])
    assert sent["text"] == {"body": "pong: ping"}
    assert token not in line


@contextmanager
def _fake_graph(python: Path, token: str, cwd: Path) -> Iterator[tuple[str, queue.Queue[str]]]:
    """``python -m cel_whatsapp.testing.fake_graph`` from the venv; yields its URL and lines."""
    with subprocess.Popen(  # noqa: S603 - the venv's own interpreter
        [str(python), "-I", "-m", "cel_whatsapp.testing.fake_graph", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(),
        cwd=cwd,
    ) as process:
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        reader = threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True)
        reader.start()
        try:
            first = _next_line(lines, lambda text: text.startswith(READY))
            yield first.split("WHATSAPP_BASE_URL=")[1].split()[0], lines
        finally:
            process.terminate()
            process.wait(10)
            reader.join(5)


@contextmanager
def _served(python: Path, port: int, env: dict[str, str], cwd: Path) -> Iterator[str]:
    log_path = cwd / "gunicorn.log"
    with (
        log_path.open("wb") as log,
        subprocess.Popen(  # noqa: S603 - the venv's interpreter
            [
                str(python),
                "-I",
                "-m",
                "gunicorn",
                "-c",
                "python:cel_whatsapp.gunicorn_conf",
                "-b",
                f"127.0.0.1:{port}",
                "--chdir",
                str(cwd),
                "roundtrip_app:create_app()",
            ],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        try:
            try:
                wait_for_port(port, 30, process)
            except RuntimeError as exc:
                raise AssertionError(log_path.read_text(errors="replace")) from exc
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(30)
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, output


def _next_line(lines: queue.Queue[str], wanted: object, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if wanted(line):  # type: ignore[operator]
            return line
        seen.append(line)
    raise AssertionError(f"no such line within {timeout}s; seen: {seen}")
