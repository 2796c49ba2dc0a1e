"""Shared fixtures for the data tests: an isolated environment and a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from deepclust.data import fetch


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env data root, no shared folder, a private cache; returns the tmp folder layout."""
    monkeypatch.delenv("DEEPCLUST_DATA", raising=False)
    monkeypatch.delenv("DEEPCLUST_DOWNLOAD", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    checkout = tmp_path / "co" / "repo"
    checkout.mkdir(parents=True)
    monkeypatch.setattr(fetch, "_package_checkout", lambda: checkout)
    work = tmp_path / "work" / "dir"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    fetch._VERIFIED.clear()
    return tmp_path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path):
    """Serve a fresh folder on 127.0.0.1 in a thread; yields (folder, base_url)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield Path(root), f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
