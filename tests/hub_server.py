"""A small stand-in for the Hugging Face Hub's file endpoints, on 127.0.0.1, for the real
`huggingface_hub` client: `HEAD`/`GET /{repo}/resolve/{revision}/{file}` with the headers the
client reads (X-Repo-Commit, ETag, Content-Length) and byte ranges for resumed downloads.

Faults on demand: `corrupt` serves other bytes than the ETag names; `drop_first` closes the
connection half-way through the first GET of a file (an interrupted download).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hub:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}  # (repo, filename) → bytes
        self.commit: dict[str, str] = {}  # repo → the commit `main` resolves to
        self.gets: Counter = Counter()
        self.corrupt: set[str] = set()
        self.drop_first: set[str] = set()
        self._dropped: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo: str, filename: str, data: bytes, commit: str = "c" * 40) -> None:
        self.files[(repo, filename)] = data
        self.commit[repo] = commit

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _lookup(self) -> tuple[str, str, bytes] | None:
                path = self.path.split("?")[0].lstrip("/")
                if "/resolve/" not in path:
                    return None
                repo, _, rest = path.partition("/resolve/")
                revision, _, filename = rest.partition("/")
                data = hub.files.get((repo, filename))
                if data is None or revision not in ("main", hub.commit.get(repo)):
                    return None
                return repo, filename, data

            def _headers(self, repo: str, data: bytes, length: int, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", hub.commit[repo])
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')  # as for LFS files
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802
                found = self._lookup()
                if found is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                repo, _, data = found
                self._headers(repo, data, len(data))

            def do_GET(self) -> None:  # noqa: N802
                found = self._lookup()
                if found is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                repo, filename, data = found
                hub.gets[filename] += 1
                body = data
                if filename in hub.corrupt:
                    body = bytes(b ^ 0xFF for b in data)
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                part = body[start:]
                self._headers(repo, data, len(part), 206 if start else 200)
                if filename in hub.drop_first and filename not in hub._dropped:
                    hub._dropped.add(filename)
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(part)

        return Handler
