"""A small stand-in for the Hugging Face Hub's file endpoints, on 127.0.0.1, for the real
`huggingface_hub` client: `HEAD`/`GET /[datasets/]{repo}/resolve/{revision}/{file}` with the
headers the client reads (X-Repo-Commit, ETag, Content-Length) and byte ranges for resumed
downloads; and, for `snapshot_download`, `/api/{models,datasets}/{repo}/revision/{rev}` and
`/api/.../tree/{rev}` (the repository's commit and file list).

Files are served as LFS files (ETag: the sha256 of the content) unless named in `plain`:
those are regular git files, as the Hub serves small text files (ETag: the git blob sha1).

Faults on demand: `corrupt` serves other bytes than the ETag names; `drop_first` closes the
connection half-way through the first GET of a file (an interrupted download).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hub:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}  # (repo, filename) → bytes
        self.commit: dict[str, str] = {}  # repo → the commit `main` resolves to
        self.gets: Counter = Counter()
        self.corrupt: set[str] = set()
        self.plain: set[str] = set()
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
                path = self.path.split("?")[0].lstrip("/").removeprefix("datasets/")
                if "/resolve/" not in path:
                    return None
                repo, _, rest = path.partition("/resolve/")
                revision, _, filename = rest.partition("/")
                data = hub.files.get((repo, filename))
                if data is None or revision not in ("main", hub.commit.get(repo)):
                    return None
                return repo, filename, data

            def _headers(self, repo: str, filename: str, data: bytes, length: int, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", hub.commit[repo])
                self.send_header("ETag", f'"{_git_sha1(data) if filename in hub.plain else _sha256(data)}"')
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def _missing(self, code: str) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802
                found = self._lookup()
                if found is None:
                    self._missing("EntryNotFound")
                    return
                repo, filename, data = found
                self._headers(repo, filename, data, len(data))

            def _api(self) -> bool:
                """repo_info and list_repo_tree, for snapshot_download."""
                path = self.path.split("?")[0]
                for kind in ("/api/models/", "/api/datasets/"):
                    if not path.startswith(kind):
                        continue
                    rest = path[len(kind) :]
                    for verb in ("/revision/", "/tree/"):
                        if verb in rest:
                            repo = rest.split(verb)[0]
                            names = sorted(f for r, f in hub.files if r == repo)
                            if not names:
                                self._missing("RepoNotFound")
                                return True
                            if verb == "/revision/":
                                body = {"id": repo, "sha": hub.commit[repo],
                                        "siblings": [{"rfilename": n} for n in names]}  # fmt: skip
                            else:
                                body = [self._entry(repo, n) for n in names]
                            data = json.dumps(body).encode()
                            self.send_response(200)
                            self.send_header("Content-Type", "application/json")
                            self.send_header("Content-Length", str(len(data)))
                            self.end_headers()
                            self.wfile.write(data)
                            return True
                return False

            def _entry(self, repo: str, name: str) -> dict:
                data = hub.files[(repo, name)]
                entry = {"type": "file", "path": name, "size": len(data), "oid": _git_sha1(data)}
                if name not in hub.plain:
                    entry["lfs"] = {"oid": _sha256(data), "size": len(data), "pointerSize": 130}
                return entry

            def do_GET(self) -> None:  # noqa: N802
                if self._api():
                    return
                found = self._lookup()
                if found is None:
                    self._missing("EntryNotFound")
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
                self._headers(repo, filename, data, len(part), 206 if start else 200)
                if filename in hub.drop_first and filename not in hub._dropped:
                    hub._dropped.add(filename)
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(part)

        return Handler


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
