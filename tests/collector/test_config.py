"""collector.toml: the example file loads, unknown keys and bad values are precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import CollectorConfig, SearchSettings, load_config
from collector.storage.compaction import CompactionSettings
from wharf.errors import InvalidArgument

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "collector.toml"


def test_example_file_is_the_defaults() -> None:
    assert load_config(EXAMPLE) == CollectorConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[storage]\nfsink = 'always'\n", r"unknown field `fsink` - at `\$.storage`"),
        ("[topic_defaults]\npartitions = 0\n", r"partition count 0.*\$.topic_defaults"),
        ("listen = 5\n", r"Expected `str`, got `int` - at `\$.listen`"),
        ("listen = \n", "invalid TOML"),
        ("[storage]\nfsync = 'sometimes'\n", r"\$.storage.fsync"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=message) as exc:
        load_config(path)
    assert str(path) in str(exc.value)


def test_remote_bind_without_token_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="not a loopback address"):
        CollectorConfig(listen="0.0.0.0:7070").check()
    CollectorConfig(listen="0.0.0.0:7070", allow_insecure_remote=True).check()
    with pytest.raises(InvalidArgument, match="HOST:PORT"):
        CollectorConfig(http="nope").check()


def test_search_processes_must_not_be_negative() -> None:
    with pytest.raises(InvalidArgument, match=r"search\.processes must be 0"):
        CollectorConfig(search=SearchSettings(processes=-1)).check()
    assert SearchSettings(processes=3).worker_count() == 3
    assert SearchSettings().worker_count() >= 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (CompactionSettings(level=0), r"compaction\.level must be a zstd level, 1\.\.22, got 0"),
        (CompactionSettings(cpu_share=1.5), r"compaction\.cpu_share must be more than 0"),
        (CompactionSettings(cpu_share=0), r"compaction\.cpu_share must be more than 0"),
        (CompactionSettings(check_s=0), r"compaction\.check_s must be more than 0"),
        (CompactionSettings(block_bytes=1), r"compaction\.block_bytes must be 64 KiB\.\.32 MiB"),
    ],
)
def test_compaction_settings_are_checked(settings: CompactionSettings, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        CollectorConfig(compaction=settings).check()
