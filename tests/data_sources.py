"""Tiny archives in the official formats of the datasets `data get` downloads, and a
loopback server that serves them with HTTP Range, for tests/test_data_get.py.

Each archive keeps the real one's folder structure, file names and annotation encodings
(CIFAR's pickles, ADE20K's zip, VOC's tar with palette PNGs, COCO's zips, stuffthingmaps'
0-indexed 182-id PNGs, PASCAL Context's MATLAB `LabelMap` files), with a few images each.

Faults on demand: `drop_first` closes the connection half-way through the first GET of a
file (a download interrupted once), `drop_always` through every GET of it, and `no_length`
sends no Content-Length and closes the connection half-way (the client cannot tell the file
was cut short).
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # a client that hangs up early (a refused download) is not the test's business


class Server:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # URL path → bytes
        self.log: list[tuple[str, str | None]] = []  # (path, Range header) per GET
        self.drop_first: set[str] = set()
        self.drop_always: set[str] = set()
        self.no_length: set[str] = set()
        self._dropped: set[str] = set()
        self.server = _Quiet(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                srv.log.append((path, self.headers.get("Range")))
                data = srv.files.get(path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                if path in srv.no_length:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                drop = path in srv.drop_always or (path in srv.drop_first and path not in srv._dropped)
                if drop:
                    srv._dropped.add(path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def png(array: np.ndarray, palette: bool = False) -> bytes:
    arr = np.ascontiguousarray(array.astype(np.uint8))
    im = Image.fromarray(arr)
    if palette:  # VOC's SegmentationClass PNGs are palette images: the indices are the labels
        im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
        im.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 151) % 256)])
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def jpg(h: int, w: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 255, 3)
    img[: h // 2, : w // 2] = rng.integers(0, 255, 3)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG")
    return buf.getvalue()


def labels(h: int, w: int, values: list[int]) -> np.ndarray:
    lab = np.full((h, w), values[0], np.uint8)
    lab[: h // 2, : w // 2] = values[1 % len(values)]
    lab[h // 2 :, w // 2 :] = values[2 % len(values)]
    return lab


def cifar100(n_train: int = 1, n_test: int = 1) -> bytes:
    """cifar-100-python.tar.gz: meta, train, test pickles (numpy `data`; protocol 4, since
    Python 3 cannot write the Python 2 `str` pickles of the real files, which load alike)."""
    rng = np.random.default_rng(2)
    names = [f"class_{i:02d}" if i % 10 else f"aquarium_fish_{i}" for i in range(100)]
    files = {
        "cifar-100-python/meta": pickle.dumps(
            {"fine_label_names": names, "coarse_label_names": ["x"] * 20}, protocol=4
        ),
        "cifar-100-python/file.txt~": b"",
    }
    for split, n in (("train", n_train), ("test", n_test)):
        fine = np.repeat(np.arange(100), n)
        data = rng.integers(0, 255, (len(fine), 3072)).astype(np.uint8)
        files[f"cifar-100-python/{split}"] = pickle.dumps(
            {"filenames": [f"{i}.png" for i in range(len(fine))], "batch_label": split,
             "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist(), "data": data},
            protocol=4,
        )  # fmt: skip
    return tar_bytes(files)


def ade20k(n_val: int = 2) -> bytes:
    """ADEChallengeData2016.zip: images/annotations × training/validation (values 0..150)."""
    files = {"ADEChallengeData2016/objectInfo150.txt": b"Idx\tRatio\tTrain\tVal\tName\n",
             "ADEChallengeData2016/sceneCategories.txt": b"ADE_val_00000001 abbey\n"}  # fmt: skip
    for split, prefix, n in (("training", "ADE_train", 1), ("validation", "ADE_val", n_val)):
        for i in range(1, n + 1):
            h, w = 48 + i, 64
            files[f"ADEChallengeData2016/images/{split}/{prefix}_{i:08d}.jpg"] = jpg(h, w, i)
            lab = labels(h, w, [0, 1 + i, 150])
            files[f"ADEChallengeData2016/annotations/{split}/{prefix}_{i:08d}.png"] = png(lab)
    return zip_bytes(files)


VOC_IDS = ["2007_000032", "2007_000033", "2007_000039"]


def voc2012() -> bytes:
    """VOCtrainval_11-May-2012.tar: VOCdevkit/VOC2012 with palette SegmentationClass PNGs."""
    files: dict[str, bytes] = {}
    base = "VOCdevkit/VOC2012"
    for i, vid in enumerate(VOC_IDS):
        h, w = 40, 50 + i
        files[f"{base}/JPEGImages/{vid}.jpg"] = jpg(h, w, i)
        files[f"{base}/SegmentationClass/{vid}.png"] = png(labels(h, w, [0, 1 + i, 255]), palette=True)
        files[f"{base}/Annotations/{vid}.xml"] = b"<annotation/>"
    files[f"{base}/ImageSets/Segmentation/train.txt"] = f"{VOC_IDS[0]}\n".encode()
    files[f"{base}/ImageSets/Segmentation/val.txt"] = "".join(f"{v}\n" for v in VOC_IDS[1:]).encode()
    return tar_bytes(files, mode="w")


CONTEXT_IDS = ["2008_000002", "2008_000003", "2008_000007"]


def pascal_context(label459: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(VOCtrainval_03-May-2010.tar, trainval.tar.gz) with one `LabelMap` .mat per image."""
    from scipy.io import savemat

    base = "VOCdevkit/VOC2010"
    voc: dict[str, bytes] = {}
    mats: dict[str, bytes] = {}
    for i, cid in enumerate(CONTEXT_IDS):
        lab = label459[cid]
        voc[f"{base}/JPEGImages/{cid}.jpg"] = jpg(*lab.shape, i)
        buf = io.BytesIO()
        savemat(buf, {"LabelMap": lab.astype(np.uint16)})
        mats[f"trainval/{cid}.mat"] = buf.getvalue()
    voc[f"{base}/ImageSets/Main/train.txt"] = f"{CONTEXT_IDS[0]}\n".encode()
    voc[f"{base}/ImageSets/Main/val.txt"] = "".join(f"{c}\n" for c in CONTEXT_IDS[1:]).encode()
    return tar_bytes(voc, mode="w"), tar_bytes(mats)


COCO_VAL2017 = ["000000000139", "000000000285"]


def coco_stuff(raw_maps: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(val2017.zip, stuffthingmaps_trainval2017.zip): stuffthingmaps hold 0-indexed ids, 255."""
    images = {f"val2017/{k}.jpg": jpg(*m.shape, i) for i, (k, m) in enumerate(raw_maps.items())}
    maps = {f"val2017/{k}.png": png(m) for k, m in raw_maps.items()}
    maps["train2017/000000000009.png"] = png(np.zeros((8, 8), np.uint8))
    return zip_bytes(images), zip_bytes(maps)


def coco_karpathy(n_test: int = 2) -> tuple[bytes, bytes]:
    """(val2014.zip, caption_datasets.zip): Karpathy's dataset_coco.json with filepath val2014."""
    images, entries = {}, []
    for i in range(n_test + 1):
        name = f"COCO_val2014_{i:012d}.jpg"
        images[f"val2014/{name}"] = jpg(30, 40, i)
        sents = [{"raw": f"a picture number {i} caption {j}.", "tokens": []} for j in range(5 + (i == 0))]
        entries.append({"filepath": "val2014", "filename": name, "split": "test" if i < n_test else "val",
                        "sentences": sents, "cocoid": i})  # fmt: skip
    captions = {
        "dataset_coco.json": json.dumps({"images": entries, "dataset": "coco"}).encode(),
        "dataset_flickr30k.json": b'{"images": [], "dataset": "flickr30k"}',
        "dataset_flickr8k.json": b'{"images": [], "dataset": "flickr8k"}',
    }
    return zip_bytes(images), zip_bytes(captions)
