import io
import tarfile

import pytest

from xlprobe.ud_release import ChecksumError, download, extract_treebank, sha256_of


def make_archive(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_extracts_only_the_named_treebank(tmp_path):
    archive = tmp_path / "ud.tgz"
    make_archive(archive, {
        "ud-treebanks-v2.1/UD_English/en-ud-dev.conllu": "# en\n",
        "ud-treebanks-v2.1/UD_English/README.md": "readme\n",
        "ud-treebanks-v2.1/UD_French/fr-ud-dev.conllu": "# fr\n",
    })
    dest = tmp_path / "ud" / "UD_English"
    extract_treebank(archive, "UD_English", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "en-ud-dev.conllu"]
    assert (dest / "en-ud-dev.conllu").read_text() == "# en\n"
    assert not (tmp_path / "ud" / "UD_French").exists()


def test_missing_treebank_is_an_error_and_leaves_nothing(tmp_path):
    archive = tmp_path / "ud.tgz"
    make_archive(archive, {"ud-treebanks-v2.1/UD_English/en-ud-dev.conllu": "x\n"})
    dest = tmp_path / "ud" / "UD_Klingon"
    with pytest.raises(FileNotFoundError, match="no UD_Klingon/\\*.conllu"):
        extract_treebank(archive, "UD_Klingon", dest)
    assert not dest.exists()
    assert not any(p.name.startswith(".") for p in (tmp_path / "ud").glob("*"))


def test_download_checks_the_checksum(tmp_path):
    source = tmp_path / "release.tgz"
    source.write_bytes(b"not really a release")
    url = source.as_uri()
    dest = tmp_path / "downloads" / "release.tgz"
    assert download(url, dest) == sha256_of(source)
    dest.unlink()
    with pytest.raises(ChecksumError, match="does not match"):
        download(url, dest, sha256="0" * 64)
    assert not dest.exists()
