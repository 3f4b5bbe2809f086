"""`slcolm data fetch` against a real HTTP server on loopback serving the corpus files."""

import functools
import http.server
import shutil
import socket
import threading

import pytest
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.data.corpus import fetch_corpus, sha256_of


@pytest.fixture
def mirror(tmp_path, corpus_dir, schema):
    """A loopback HTTP server with a copy of the corpus files, laid out like the repository."""
    root = tmp_path / "mirror"
    folder = root / schema.corpus.fetch["folder"]
    folder.mkdir(parents=True)
    for name in schema.corpus.sha256:
        shutil.copy(corpus_dir / name, folder / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/{{folder}}/{{file}}", folder
    server.shutdown()
    server.server_close()


def test_fetch_downloads_and_verifies(tmp_path, schema, mirror):
    url, _ = mirror
    out = tmp_path / "data"
    files = fetch_corpus(schema, out, url_template=url)
    assert sorted(p.name for p in files) == sorted(schema.corpus.sha256)
    for path in files:
        assert sha256_of(path) == schema.corpus.sha256[path.name]
    seen = []
    fetch_corpus(schema, out, url_template=url, on_file=lambda name, how: seen.append(how))
    assert set(seen) == {"present"}  # verified copies are not downloaded again


def test_fetch_rejects_a_corrupted_file(tmp_path, schema, mirror):
    url, folder = mirror
    with (folder / "dev.json").open("a", encoding="utf-8") as handle:
        handle.write(" ")
    out = tmp_path / "data"
    with pytest.raises(SlcolmError, match=r"dev\.json: sha256 .* does not match the pinned"):
        fetch_corpus(schema, out, url_template=url)
    assert not (out / "dev.json").exists() and not (out / "dev.json.part").exists()


def test_fetch_offline_is_one_clear_line(tmp_path, schema):
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(
        app,
        [
            "data",
            "fetch",
            "chisre",
            "--data",
            str(tmp_path / "d"),
            "--url-template",
            f"http://127.0.0.1:{port}/{{file}}",
        ],
    )
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("error: cannot download http://127.0.0.1:") and "offline" in line
    assert "\n" not in line and "Traceback" not in result.output


def test_cli_fetch_then_stats(tmp_path, mirror):
    url, _ = mirror
    out = tmp_path / "data"
    runner = CliRunner()
    fetched = runner.invoke(app, ["data", "fetch", "chisre", "--data", str(out), "--url-template", url])
    assert fetched.exit_code == 0, fetched.output
    assert "7 files verified" in fetched.output
    stats = runner.invoke(app, ["data", "stats", "--data", str(out)])
    assert stats.exit_code == 0, stats.output
    assert "3208" in stats.output and "111193" in stats.output
