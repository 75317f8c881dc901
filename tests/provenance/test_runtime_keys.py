"""A service's own keys: created 0600 where the configuration says, refused when readable by others
or tracked by git, and the watermark secret independent of anything published."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from charter.core.errors import InputError
from charter.gateway.config import GatewayConfig
from charter.provenance.keys import (
    check_private_file,
    key_id,
    load_runtime_key,
    load_secret,
    public_key_path,
    secret_id,
)

REPO = Path(__file__).resolve().parents[2]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_the_repository_tracks_no_private_key():
    # The key once tracked at the repository root signed receipts for anyone with a clone.
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    names = [n for n in files.decode().split("\0") if n and not n.startswith("tests/")]
    leaked = [n for n in names if (REPO / n).is_file() and b"PRIVATE KEY-----" in (REPO / n).read_bytes()[:4096]]
    assert leaked == []


def test_runtime_key_is_created_0600_with_its_public_key(tmp_path):
    p = tmp_path / "keys" / "rt.pem"
    key = load_runtime_key(p)
    assert _mode(p) == 0o600
    assert public_key_path(p).is_file()
    assert key_id(load_runtime_key(p).public_key()) == key_id(key.public_key())  # the same key on the next start


def test_group_or_world_readable_key_is_refused(tmp_path):
    p = tmp_path / "rt.pem"
    load_runtime_key(p)
    p.chmod(0o644)
    with pytest.raises(InputError, match="readable by group/others.*chmod 600"):
        load_runtime_key(p)
    p.chmod(0o640)
    with pytest.raises(InputError, match="mode 640"):
        load_runtime_key(p)


def test_a_key_tracked_by_git_is_refused(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    p = repo / "rt.pem"
    load_runtime_key(p)
    subprocess.run(["git", "-C", str(repo), "add", "rt.pem"], check=True)
    with pytest.raises(InputError, match="tracked by git"):
        load_runtime_key(p)


def test_default_runtime_key_lives_beside_the_sqlite_database(tmp_path, monkeypatch):
    work, data = tmp_path / "checkout", tmp_path / "var"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg = GatewayConfig.model_validate({"server": {"database": f"sqlite:///{data / 'gw.db'}"}, "base_dir": str(work)})
    assert cfg.runtime_key_path() == str(data / "gw.runtime-key.pem")
    assert cfg.watermark_key_path() == str(data / "gw.watermark-key")
    named = GatewayConfig.model_validate(
        {"server": {"database": "sqlite:///a.db", "runtime_key": "k/rt.pem"}, "base_dir": str(work)}
    )
    assert named.runtime_key_path() == str(work / "k" / "rt.pem")
    assert named.watermark_key_path() == str(work / "k" / "rt.watermark-key")


def test_other_databases_must_name_the_runtime_key():
    for db in ("postgresql://u@127.0.0.1/charter", "sqlite:///:memory:"):
        cfg = GatewayConfig.model_validate({"server": {"database": db}})
        with pytest.raises(InputError, match="server.runtime_key: name the runtime key file"):
            cfg.runtime_key_path()


def test_inline_watermark_key_is_refused():
    from charter.gateway.config import load_gateway_config

    with pytest.raises(InputError, match="compliance.watermark_key.*no longer accepted"):
        load_gateway_config(None, **{"compliance.watermark_key": 123456789})


def test_watermark_secret_is_random_256_bits_and_0600(tmp_path):
    a, b = tmp_path / "a.watermark-key", tmp_path / "b.watermark-key"
    sa, sb = load_secret(a, "the watermark key"), load_secret(b, "the watermark key")
    assert len(sa) == 32 and sa != sb  # drawn, not derived: two deployments never share one
    assert load_secret(a, "the watermark key") == sa
    assert _mode(a) == 0o600
    assert secret_id(sa) != secret_id(sb) and sa.hex() not in secret_id(sa)
    with pytest.raises(InputError, match="no such"):
        load_secret(tmp_path / "missing", "the watermark key", create=False)
    a.chmod(0o604)
    with pytest.raises(InputError, match="readable by group/others"):
        check_private_file(a, "the watermark key")


def test_cli_refuses_a_readable_runtime_key_in_one_line(tmp_path):
    from tests.cli.test_cli import _one_error_line, invoke

    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[server]\ndatabase = "sqlite:///{tmp_path / "gw.db"}"\n')
    key = tmp_path / "gw.runtime-key.pem"
    load_runtime_key(key)
    key.chmod(0o644)
    line = _one_error_line(invoke("audit", "checkpoint", "--config", cfg))
    assert str(key) in line and "readable by group/others" in line


def test_the_key_once_published_in_the_repository_is_refused_anywhere(tmp_path):
    r = subprocess.run(["git", "-C", str(REPO), "show", "e919b7b:charter-runtime-key.pem"], capture_output=True)
    if r.returncode != 0:
        pytest.skip("the published key's commit is not in this clone (shallow)")
    p = tmp_path / "copied-outside-git.pem"  # mode 0600 and untracked: only its identity gives it away
    p.write_bytes(r.stdout)
    p.chmod(0o600)
    with pytest.raises(InputError, match="published in Charter's repository"):
        load_runtime_key(p)


def test_processes_racing_to_create_a_key_all_read_one_complete_file(tmp_path):
    # Several gateway workers start together: one writes, the others must never see a half-written file.
    from concurrent.futures import ThreadPoolExecutor

    from charter.provenance.keys import create_private_file

    p = tmp_path / "race.pem"
    datas = [bytes([65 + i]) * 100_000 for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda d: create_private_file(p, d), datas))
    assert won.count(True) == 1
    assert p.read_bytes() == datas[won.index(True)]
    assert _mode(p) == 0o600 and [q.name for q in tmp_path.iterdir()] == ["race.pem"]  # no temporary left
