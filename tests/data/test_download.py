"""Corpus download without the internet: local http.server and file:// URLs, checksums, safe extraction."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tts_lab.data.corpora import read_cmu_arctic, read_ljspeech
from tts_lab.data.download import (
    ARCTIC_SHA256,
    Archive,
    arctic_archive,
    download_corpus,
    fetch,
    ljspeech_archive,
    safe_extract,
)
from tts_lab.data.problems import DataError, ProblemReport


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_tree(base: Path) -> None:
    """A two-utterance LJSpeech-1.1 folder and a one-speaker CMU Arctic folder under ``base``."""
    lj = base / "LJSpeech-1.1"
    (lj / "wavs").mkdir(parents=True)
    (lj / "metadata.csv").write_text('LJ001-0001|A "quoted" word|A "quoted" word\nLJ001-0002|Two|Two\n')
    arctic = base / "cmu_us_xyz_arctic"
    (arctic / "etc").mkdir(parents=True)
    (arctic / "wav").mkdir()
    (arctic / "etc" / "txt.done.data").write_text('( arctic_a0001 "Author of the danger trail." )\n')
    for wav in (lj / "wavs" / "LJ001-0001.wav", lj / "wavs" / "LJ001-0002.wav", arctic / "wav" / "arctic_a0001.wav"):
        sf.write(str(wav), np.zeros(100, dtype=np.float32), 22050)


@pytest.fixture()
def served(tmp_path: Path) -> Path:
    """Folder with LJSpeech-1.1.tar.bz2 and cmu_us_xyz_arctic.tar.gz built from a fake tree."""
    src, served = tmp_path / "src", tmp_path / "served"
    src.mkdir()
    served.mkdir()
    make_tree(src)
    with tarfile.open(served / "LJSpeech-1.1.tar.bz2", "w:bz2") as tar:
        tar.add(src / "LJSpeech-1.1", arcname="LJSpeech-1.1")
    with tarfile.open(served / "cmu_us_xyz_arctic.tar.gz", "w:gz") as tar:
        tar.add(src / "cmu_us_xyz_arctic", arcname="cmu_us_xyz_arctic")
    return served


@pytest.fixture()
def http_url(served: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Base URL of a 127.0.0.1 HTTP server (random free port) serving the ``served`` folder."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


DEAD_URL = "http://127.0.0.1:9/unreachable.tar.bz2"  # discard port: any attempt to download fails


def test_official_archives() -> None:
    lj = ljspeech_archive()
    assert lj.url == "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
    assert lj.folder == "LJSpeech-1.1" and lj.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", lj.sha256)
    bdl = arctic_archive("bdl")
    assert bdl.url == "http://festvox.org/cmu_arctic/packed/cmu_us_bdl_arctic.tar.bz2"
    assert bdl.folder == "cmu_us_bdl_arctic"
    assert len(ARCTIC_SHA256) == 18 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in ARCTIC_SHA256.values())
    with pytest.raises(DataError, match="known: aew, ahw"):
        arctic_archive("nobody")


def test_ljspeech_over_http_end_to_end(tmp_path: Path, served: Path, http_url: str) -> None:
    archive = served / "LJSpeech-1.1.tar.bz2"
    root = tmp_path / "data"
    override = {"ljspeech": Archive(f"{http_url}/{archive.name}", sha(archive), "LJSpeech-1.1")}
    assert download_corpus("ljspeech", root, archive_override=override) == root
    utts = read_ljspeech(root, ProblemReport("lj", strict=True))
    assert [u.text for u in utts] == ['A "quoted" word', "Two"]
    assert sorted(p.name for p in root.iterdir()) == ["LJSpeech-1.1"]  # archive and temp folders gone
    # Present already: nothing is fetched, so an unreachable URL does not matter.
    download_corpus("ljspeech", root, archive_override={"ljspeech": Archive(DEAD_URL, None, "LJSpeech-1.1")})


def test_arctic_over_file_url_end_to_end(tmp_path: Path, served: Path) -> None:
    archive = served / "cmu_us_xyz_arctic.tar.gz"
    root = tmp_path / "data"
    override = {"xyz": Archive(archive.as_uri(), sha(archive), "cmu_us_xyz_arctic")}
    download_corpus("cmu_arctic", root, speakers=["xyz"], archive_override=override)
    utts = read_cmu_arctic(root, ProblemReport("arctic", strict=True))
    assert [(u.id, u.text) for u in utts] == [("xyz/arctic_a0001", "Author of the danger trail.")]


def test_archive_without_expected_folder_is_refused(tmp_path: Path, served: Path) -> None:
    archive = served / "cmu_us_xyz_arctic.tar.gz"
    root = tmp_path / "data"
    override = {"xyz": Archive(archive.as_uri(), sha(archive), "cmu_us_other_arctic")}
    with pytest.raises(DataError, match="expected folder cmu_us_other_arctic/"):
        download_corpus("cmu_arctic", root, speakers=["xyz"], archive_override=override)
    assert not (root / "cmu_us_other_arctic").exists()
    assert not list(root.glob(".extract-*"))


def test_fetch_checksum_mismatch_leaves_nothing(tmp_path: Path, served: Path, http_url: str) -> None:
    url = f"{http_url}/LJSpeech-1.1.tar.bz2"
    dest = tmp_path / "dl" / "LJSpeech-1.1.tar.bz2"
    with pytest.raises(DataError) as err:
        fetch(url, dest, "0" * 64, progress=False)
    message = str(err.value)
    assert url in message and "0" * 64 in message and sha(served / "LJSpeech-1.1.tar.bz2") in message
    assert list(dest.parent.iterdir()) == []


def test_fetch_reuses_verified_file_and_replaces_a_bad_one(tmp_path: Path, served: Path) -> None:
    archive = served / "cmu_us_xyz_arctic.tar.gz"
    dest = tmp_path / "a.tar.gz"
    fetch(archive.as_uri(), dest, sha(archive), progress=False)
    assert sha(dest) == sha(archive)
    fetch(DEAD_URL, dest, sha(archive), progress=False)  # verified: no download attempted
    dest.write_bytes(b"corrupt")
    fetch(archive.as_uri(), dest, sha(archive), progress=False)
    assert sha(dest) == sha(archive)
    with pytest.raises(DataError, match="could not download"):
        fetch(DEAD_URL, tmp_path / "b.tar.gz", None, progress=False)


# ---------------------------------------------------------------- safe extraction

def tar_with(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info in members:
            data = b"pwned" if info.isfile() else None
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, linkname
    return member


@pytest.mark.parametrize(
    ("members", "bad"),
    [
        (lambda out: [info("ok.txt"), info("../evil")], "../evil"),
        (lambda out: [info(str(out / "evil"))], "{out}/evil"),
        # Never follow the /etc/passwd link with a file: a broken check would overwrite it (tests may run as root).
        (lambda out: [info("link", tarfile.SYMTYPE, "/etc/passwd")], "link"),
        (lambda out: [info("pw", tarfile.SYMTYPE, str(out / "passwd")), info("pw")], "pw"),
        (lambda out: [info("d", tarfile.SYMTYPE, str(out)), info("d/evil")], "d"),
        (lambda out: [info("sub/d", tarfile.SYMTYPE, "../../outside"), info("sub/d/evil")], "sub/d"),
        (lambda out: [info("h", tarfile.LNKTYPE, "../outside/evil")], "h"),
        (lambda out: [info("dev", tarfile.CHRTYPE)], "dev"),
    ],
    ids=["dotdot", "absolute", "symlink-etc-passwd", "symlink-then-file", "symlink-abs-dir", "symlink-rel-dir", "hardlink", "device"],
)
def test_malicious_tar_refused(tmp_path: Path, members, bad: str) -> None:
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    (outside / "passwd").write_text("sentinel")
    archive = tar_with(tmp_path / "evil.tar", members(outside))
    with pytest.raises(DataError, match=re.escape(f"refusing member {bad.format(out=outside)!r}")):
        safe_extract(archive, dest)
    assert [p.name for p in outside.iterdir()] == ["passwd"] and (outside / "passwd").read_text() == "sentinel"
    assert list(dest.iterdir()) == []  # every member is checked before anything is written


def test_malicious_zip_refused(tmp_path: Path) -> None:
    archive, dest = tmp_path / "evil.zip", tmp_path / "a" / "dest"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr("../x", "pwned")
    with pytest.raises(DataError, match=re.escape("refusing member '../x'")):
        safe_extract(archive, dest)
    assert not (tmp_path / "a" / "x").exists() and list(dest.iterdir()) == []


@pytest.mark.parametrize("mode", ["w", "w:xz", "zip"])
def test_safe_extract_good_archives(tmp_path: Path, mode: str) -> None:
    src = tmp_path / "src"
    make_tree(src)
    archive = tmp_path / "good.archive"
    if mode == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for file in src.rglob("*"):
                zf.write(file, file.relative_to(src).as_posix())
    else:
        with tarfile.open(archive, mode) as tar:
            tar.add(src / "LJSpeech-1.1", arcname="LJSpeech-1.1")
    safe_extract(archive, tmp_path / "out")
    assert len(read_ljspeech(tmp_path / "out", ProblemReport("lj", strict=True))) == 2


def test_safe_extract_rejects_non_archives(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.bz2"
    junk.write_bytes(b"this is not an archive" * 50)
    with pytest.raises(DataError, match="not a readable tar or zip"):
        safe_extract(junk, tmp_path / "out")
