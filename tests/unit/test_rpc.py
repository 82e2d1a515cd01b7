"""The checked-in gRPC code is what protoc makes of the .proto; conversion and targets are exact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from textlayer.elements import Line, PageText, Word
from textlayer.worker import messages
from textlayer.worker.client import channel_target, service_config

REPO = Path(__file__).resolve().parents[2]
GENERATED = ("ocr_pb2.py", "ocr_pb2.pyi", "ocr_pb2_grpc.py")


def test_generated_code_is_not_stale(tmp_path):
    command = [
        sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}", "protos/textlayer/rpc/v1/ocr.proto",
    ]  # fmt: skip
    subprocess.run(command, cwd=REPO, check=True)
    for name in GENERATED:
        fresh = (tmp_path / "textlayer" / "rpc" / "v1" / name).read_bytes()
        checked_in = (REPO / "src" / "textlayer" / "rpc" / "v1" / name).read_bytes()
        assert fresh == checked_in, f"{name} is stale: regenerate it (command in protos/textlayer/rpc/v1/ocr.proto)"


def test_page_round_trips_through_protobuf_exactly():
    quad = ((1.25, 2.5), (30.125, 2.0), (30.0, 12.75), (1.0, 13.0))
    page = PageText(
        640,
        480,
        90,
        (Line((Word("Grand", quad, 0.987654321), Word("total", quad, 0.5)), quad, 0.75, 2),),
        300.0,
        {"detection": 0.25},
    )
    back = messages.page_from_proto(messages.page_to_proto(page, request_id="r1", server="s"))
    assert back == page and back.timings_s == page.timings_s


def test_broken_results_are_refused():
    result = messages.page_to_proto(PageText(10, 10, 0, ()))
    result.rotation = 45
    with pytest.raises(ValueError):
        messages.page_from_proto(result)


@pytest.mark.parametrize(
    ("servers", "target"),
    [
        ("unix:/run/textlayer/ocr.sock", "unix:/run/textlayer/ocr.sock"),
        ("dns:///ocr.internal:50051", "dns:///ocr.internal:50051"),
        (["127.0.0.1:1", "localhost:2"], "ipv4:127.0.0.1:1,127.0.0.1:2"),
        ("10.0.0.1:50051,10.0.0.2:50051", "ipv4:10.0.0.1:50051,10.0.0.2:50051"),
        (["[::1]:1", "[::1]:2"], "ipv6:[::1]:1,[::1]:2"),
    ],
)
def test_channel_targets(servers, target):
    assert channel_target(servers) == target


def test_lists_need_ip_addresses():
    with pytest.raises(ValueError):
        channel_target(["ocr-a:1", "ocr-b:1"])


def test_service_config_retries_only_unavailable_and_ejects_outliers():
    config = service_config(deadline_s=60)
    (method,) = config["methodConfig"]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["waitForReady"] is False
    assert "outlier_detection_experimental" in config["loadBalancingConfig"][0]
    assert config["healthCheckConfig"]["serviceName"] == "textlayer.rpc.v1.OcrService"
