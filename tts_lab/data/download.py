"""Downloading the official LJSpeech / CMU Arctic archives: verified by sha256, extracted safely.

Checksums are the ones torchaudio publishes for the same URLs
(``torchaudio/datasets/ljspeech.py`` and ``torchaudio/datasets/cmuarctic.py``).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import re
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from tts_lab.data.corpora import LJSPEECH_DIR
from tts_lab.data.problems import DataError

log = logging.getLogger(__name__)

LJSPEECH_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
LJSPEECH_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
ARCTIC_URL = "http://festvox.org/cmu_arctic/packed/cmu_us_{speaker}_arctic.tar.bz2"
ARCTIC_SHA256 = {
    "aew": "645cb33c0f0b2ce41384fdd8d3db2c3f5fc15c1e688baeb74d2e08cab18ab406",
    "ahw": "024664adeb892809d646a3efd043625b46b5bfa3e6189b3500b2d0d59dfab06c",
    "aup": "2c55bc3050caa996758869126ad10cf42e1441212111db034b3a45189c18b6fc",
    "awb": "d74a950c9739a65f7bfc4dfa6187f2730fa03de5b8eb3f2da97a51b74df64d3c",
    "axb": "dd65c3d2907d1ee52f86e44f578319159e60f4bf722a9142be01161d84e330ff",
    "bdl": "26b91aaf48b2799b2956792b4632c2f926cd0542f402b5452d5adecb60942904",
    "clb": "3f16dc3f3b97955ea22623efb33b444341013fc660677b2e170efdcc959fa7c6",
    "eey": "8a0ee4e5acbd4b2f61a4fb947c1730ab3adcc9dc50b195981d99391d29928e8a",
    "fem": "3fcff629412b57233589cdb058f730594a62c4f3a75c20de14afe06621ef45e2",
    "gka": "dc82e7967cbd5eddbed33074b0699128dbd4482b41711916d58103707e38c67f",
    "jmk": "3a37c0e1dfc91e734fdbc88b562d9e2ebca621772402cdc693bbc9b09b211d73",
    "ksp": "8029cafce8296f9bed3022c44ef1e7953332b6bf6943c14b929f468122532717",
    "ljm": "b23993765cbf2b9e7bbc3c85b6c56eaf292ac81ee4bb887b638a24d104f921a0",
    "lnh": "4faf34d71aa7112813252fb20c5433e2fdd9a9de55a00701ffcbf05f24a5991a",
    "rms": "c6dc11235629c58441c071a7ba8a2d067903dfefbaabc4056d87da35b72ecda4",
    "rxr": "1fa4271c393e5998d200e56c102ff46fcfea169aaa2148ad9e9469616fbfdd9b",
    "slp": "54345ed55e45c23d419e9a823eef427f1cc93c83a710735ec667d068c916abf1",
    "slt": "7c173297916acf3cc7fcab2713be4c60b27312316765a90934651d367226b4ea",
}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """A downloadable corpus archive and the top-level folder it extracts to."""

    url: str
    sha256: str | None
    folder: str


def ljspeech_archive() -> Archive:
    """The official LJSpeech 1.1 archive (2.6 GB)."""
    return Archive(LJSPEECH_URL, LJSPEECH_SHA256, LJSPEECH_DIR)


def arctic_archive(speaker: str) -> Archive:
    """The official CMU Arctic archive of one speaker (e.g. "bdl", "slt")."""
    if speaker not in ARCTIC_SHA256:
        raise DataError(f"unknown CMU Arctic speaker {speaker!r}; known: {', '.join(sorted(ARCTIC_SHA256))}")
    return Archive(ARCTIC_URL.format(speaker=speaker), ARCTIC_SHA256[speaker], f"cmu_us_{speaker}_arctic")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: Path, sha256: str | None, progress: bool = True) -> Path:
    """Download ``url`` (http(s):// or file://) to ``dest``, verified, written atomically.

    An existing ``dest`` that matches ``sha256`` (or any existing one when no checksum is known)
    is reused. A checksum mismatch raises DataError and leaves no file behind.
    """
    dest = Path(dest)
    if dest.is_file():
        if sha256 is None or sha256_of(dest) == sha256.lower():
            log.info("using existing %s", dest)
            return dest
        log.warning("%s does not match its checksum; downloading it again", dest)
    if sha256 is None:
        log.warning("no checksum known for %s; the download will not be verified", url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress,
                      file=sys.stderr) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DataError(f"download of {url} was cut short: got {received} of {total} bytes")
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256.lower():
            raise DataError(f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DataError(f"could not download {url} to {dest}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _escapes(name: str) -> bool:
    """True if an archive path is absolute or climbs out of the extraction folder."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):  # POSIX, UNC or drive-absolute
        return True
    normal = posixpath.normpath(name.replace("\\", "/"))
    return normal == ".." or normal.startswith("../")


def _check_tar(archive: Path, tar: tarfile.TarFile, dest: Path) -> None:
    """Refuse the whole archive if any member could write outside ``dest``."""
    links: set[str] = set()
    for member in tar.getmembers():
        name = posixpath.normpath(member.name)
        why = None
        if _escapes(member.name):
            why = "path outside the destination"
        elif any(name == link or name.startswith(link + "/") for link in links):
            why = "path goes through a symlink"
        elif member.issym() and _escapes(posixpath.join(posixpath.dirname(name), member.linkname)):
            why = f"symlink to {member.linkname!r} outside the destination"
        elif member.islnk() and _escapes(member.linkname):
            why = f"hard link to {member.linkname!r} outside the destination"
        elif member.isdev() or not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            why = "device or special file"
        else:
            try:
                tarfile.data_filter(member, str(dest))
            except tarfile.FilterError as err:
                why = str(err)
        if why:
            raise DataError(f"{archive}: refusing member {member.name!r}: {why}")
        if member.issym():
            links.add(name)


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        if _escapes(info.filename):
            raise DataError(f"{archive}: refusing member {info.filename!r}: path outside the destination")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(f"{archive}: refusing member {info.filename!r}: symlinks are not allowed")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar (plain/gz/bz2/xz) or zip archive into ``dest``, refusing unsafe members.

    Every member is checked before anything is written; tar extraction also runs through
    Python's ``data`` extraction filter.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with open(archive, "rb") as f:
        is_zip = f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    try:
        if is_zip:
            with zipfile.ZipFile(archive) as zf:
                _check_zip(archive, zf)
                zf.extractall(dest)
        else:
            with tarfile.open(archive, "r:*") as tar:
                _check_tar(archive, tar, dest)
                tar.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{archive}: not a readable tar or zip archive ({err})") from err


def download_corpus(
    name: Literal["ljspeech", "cmu_arctic"],
    root: Path,
    speakers: Sequence[str] = ("bdl", "slt"),
    archive_override: dict[str, Archive] | None = None,
) -> Path:
    """Download and extract a corpus into ``root`` (skipping folders already there); returns ``root``.

    ``archive_override`` replaces archives by key: ``"ljspeech"`` or a CMU Arctic speaker name.
    Extraction goes to a temporary folder first, so an interrupted run never looks complete.
    """
    root = Path(root)
    override = archive_override or {}
    if name == "ljspeech":
        keys = ["ljspeech"]
    elif name == "cmu_arctic":
        keys = list(dict.fromkeys(speakers))
    else:
        raise DataError(f"unknown corpus {name!r}; expected 'ljspeech' or 'cmu_arctic'")
    for key in keys:
        if key in override:
            archive = override[key]
        else:
            archive = ljspeech_archive() if name == "ljspeech" else arctic_archive(key)
        target = root / archive.folder
        if target.is_dir():
            log.info("%s already present; skipping download", target)
            continue
        file_name = posixpath.basename(urllib.parse.urlparse(archive.url).path) or f"{archive.folder}.archive"
        local = fetch(archive.url, root / file_name, archive.sha256)
        with tempfile.TemporaryDirectory(prefix=".extract-", dir=root) as tmp:
            safe_extract(local, Path(tmp))
            extracted = Path(tmp) / archive.folder
            if not extracted.is_dir():
                raise DataError(f"{archive.url}: archive does not contain the expected folder {archive.folder}/")
            os.replace(extracted, target)
        local.unlink()  # the extracted folder now marks the corpus as present
        log.info("extracted %s", target)
    return root
