"""shipper.toml: the example loads, the minimal form of DESIGN works, errors name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.config import ShipperConfig, load_config, parse_config
from wharf.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
collectors = ["127.0.0.1:7070"]
state_dir = "/var/lib/wharf/shipper"

[[inputs]]
paths = ["/var/log/nginx/*.log"]
topic = "nginx"
parser = "clf"
"""


def test_example_config_loads_and_documents_every_key() -> None:
    cfg = load_config(ROOT / "config" / "shipper.toml")
    assert cfg.inputs[0].parser == "clf"
    assert cfg.inputs[1].multiline_config() is not None
    text = (ROOT / "config" / "shipper.toml").read_text()
    keys = [k for k in ShipperConfig.__struct_fields__ if k not in ("inputs", "tls")]
    missing = [k for k in keys if f"\n{k} =" not in text]
    assert not missing, f"keys not in the example: {missing}"


def test_minimal_design_config_works_with_defaults() -> None:
    cfg = parse_config(MINIMAL, "shipper.toml")
    assert cfg.batch_bytes == 2 << 20 and cfg.linger_s == 1.0
    assert cfg.memory_queue_bytes == 8 << 20 and cfg.builders == 0
    assert cfg.spool_max_bytes > 0 and cfg.max_open_files == 1024
    assert cfg.inputs[0].start_at == "beginning" and cfg.metrics_listen == ""
    assert cfg.ssl_context() is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("batch_byte = 5\n" + MINIMAL, "batch_byte"),
        (MINIMAL.replace('parser = "clf"', 'parser = "clf"\ntopicc = "x"'), "topicc"),
        (MINIMAL.replace('"nginx"\n', '"Bad Topic"\n'), "inputs[0].topic"),
        (MINIMAL.replace('"clf"', '"nope"'), "inputs[0].parser"),
        (MINIMAL.replace("/var/log", "var/log"), "absolute"),
        ('metrics_listen = "nohost"\n' + MINIMAL, "metrics_listen"),
        (MINIMAL.replace('parser = "clf"', 'multiline = "cobol"'), "inputs[0].multiline"),
        ("linger_s = 0\n" + MINIMAL, "linger_s"),
        (
            MINIMAL.replace('parser = "clf"', 'parser = "cri"\nmultiline = "java"'),
            "not supported with parser 'cri'",
        ),
        (
            MINIMAL.replace('parser = "clf"', 'parser = "docker"\nencoding = "utf-16le"'),
            "inputs[0].encoding: container logs (docker) are UTF-8",
        ),
        (MINIMAL.replace('parser = "clf"', 'encoding = "latin1"'), "$.inputs[0].encoding"),
        (
            MINIMAL + '\n[[inputs]]\npaths = ["/a"]\ntopic = "a"\nstart_at = "middle"\n',
            "$.inputs[1].start_at",
        ),
    ],
)
def test_errors_name_the_file_and_the_key(text: str, needle: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_config(text, "/etc/wharf/shipper.toml")
    assert str(err.value).startswith("/etc/wharf/shipper.toml: ")
    assert needle in str(err.value)


def test_shipper_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    cfg = parse_config(MINIMAL)
    first = cfg.producer_id(tmp_path)
    assert len(first) == 16 and cfg.producer_id(tmp_path) == first
    named = parse_config('shipper_id = "web-01"\n' + MINIMAL)
    assert named.producer_id(tmp_path) == named.producer_id(tmp_path / "elsewhere") != first
