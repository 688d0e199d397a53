"""Logs, X-Request-ID, /metrics' collectors and key setting, CORS' exposed headers, and how
`python -m service` / `uvicorn service.main:app` set up logging."""
import json
import logging
import os
import re
import subprocess
import sys
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import service.__main__ as entry
from service import metrics as metrics_module
from service.logs import ACCESS_LOGGER, JSON_FORMATTER, RequestIdFilter, current_request_id, json_formatter
from service.main import create_app
from service.metrics import Metrics
from tests.conftest import ROOT, free_port, make_client, make_settings, wait_ready

UUID4_HEX = re.compile(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}")


# --- X-Request-ID -----------------------------------------------------------------------------

def test_every_response_gets_a_new_request_id(client):
    responses = [client.get("/healthz"), client.get("/models"), client.get("/no/such/path"),
                 client.get("/sample", params={"seed": 1}),  # the lean path
                 client.get("/sample", params={"seed": 1, "format": "json"}),  # FastAPI's route
                 client.get("/sample", params={"n": 0})]  # a 422
    ids = [r.headers["x-request-id"] for r in responses]
    assert [r.status_code for r in responses] == [200, 200, 404, 200, 200, 422]
    assert all(UUID4_HEX.fullmatch(i) and uuid.UUID(i).version == 4 for i in ids), ids
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("sent", ["abc", "req-42.retry_1", "A" * 128, "0af7651916cd43dd8448eb211c80319c"])
def test_a_sane_request_id_is_echoed(client, sent):
    for path in ("/sample?seed=3", "/models", "/nope"):
        assert client.get(path, headers={"X-Request-ID": sent}).headers["x-request-id"] == sent


@pytest.mark.parametrize("sent", ["", "A" * 129, "has space", "semi;colon", "back\\slash", "é", "a/b"])
def test_an_odd_request_id_is_replaced(client, sent):
    r = client.get("/sample", params={"seed": 3}, headers={"X-Request-ID": sent.encode("utf-8")})
    assert UUID4_HEX.fullmatch(r.headers["x-request-id"])


def test_request_id_is_in_the_context_while_a_request_runs(tiny_weights):
    app = create_app(make_settings(tiny_weights))

    @app.api.get("/which-id")
    async def which_id():
        return {"id": current_request_id.get().decode()}

    with TestClient(app) as c:
        r = c.get("/which-id", headers={"X-Request-ID": "trace-me"})
        assert r.json() == {"id": "trace-me"} and r.headers["x-request-id"] == "trace-me"
        assert UUID4_HEX.fullmatch(c.get("/which-id").json()["id"])


# --- access log -------------------------------------------------------------------------------

def access_records(caplog):
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


def test_one_access_line_per_request(client, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client.get("/sample", params={"seed": 5, "n": 2}, headers={"X-Request-ID": "line-1"})  # lean path
    client.get("/models/nope", headers={"X-Request-ID": "line-2"})
    first, second = access_records(caplog)
    assert (first.method, first.path, first.status, first.request_id) == ("GET", "/sample?seed=5&n=2", 200, "line-1")
    assert (second.method, second.path, second.status, second.request_id) == ("GET", "/models/nope", 404, "line-2")
    for record in (first, second):
        assert record.levelno == logging.INFO and record.client == "testclient:50000"
        assert isinstance(record.latency_ms, float) and 0 < record.latency_ms < 60_000
    assert first.getMessage() == (f'testclient:50000 "GET /sample?seed=5&n=2 HTTP/1.1" 200 '
                                  f'{first.latency_ms:.2f}ms request_id=line-1')


def test_access_line_cannot_be_forged_through_the_path(client, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client.get("/x%0A2026-01-01 INFO forged")
    (record,) = access_records(caplog)
    assert "\n" not in record.getMessage() and record.path == "/x%0A2026-01-01%20INFO%20forged"


def test_no_access_log_skips_the_work(client, caplog, monkeypatch):
    built = []
    monkeypatch.setattr(metrics_module, "log_access", lambda *args: built.append(args))
    caplog.set_level(logging.CRITICAL, logger=ACCESS_LOGGER)  # what --no-access-log configures
    client.get("/sample", params={"seed": 1})
    client.get("/healthz")
    assert built == []
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client.get("/healthz")
    assert len(built) == 1


# --- log configuration ------------------------------------------------------------------------

def test_json_lines_carry_the_record_and_request_fields():
    formatter = json_formatter(**{k: v for k, v in JSON_FORMATTER.items() if k != "()"})
    record = logging.LogRecord("digitgen.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.status, record.color_message = 200, "\x1b[32mcoloured\x1b[0m"
    token = current_request_id.set(b"abc.1")
    try:
        assert RequestIdFilter().filter(record)
    finally:
        current_request_id.reset(token)
    line = formatter.format(record)
    fields = json.loads(line)
    assert list(fields)[:4] == ["time", "level", "logger", "message"] and "\n" not in line
    assert fields["level"] == "INFO" and fields["logger"] == "digitgen.access" and fields["message"] == "GET /x"
    assert fields["status"] == 200 and fields["request_id"] == "abc.1"
    assert "color_message" not in fields and "args" not in fields and "taskName" not in fields
    assert fields["time"].endswith("+00:00")


def test_log_level_and_format_settings_reach_uvicorn(tiny_weights, monkeypatch):
    """DIGITGEN_LOG_LEVEL is --log-level's default, the flag wins; uvicorn's access log is off and ours
    follows --no-access-log."""
    runs = []
    monkeypatch.setattr(entry.uvicorn, "run", lambda app, **kwargs: runs.append(kwargs))
    monkeypatch.setattr(entry.signal, "signal", lambda *args: None)
    monkeypatch.setenv("DIGITGEN_WEIGHTS_DIR", str(tiny_weights))
    monkeypatch.setenv("DIGITGEN_DEVICE", "cpu")
    monkeypatch.setenv("DIGITGEN_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("DIGITGEN_LOG_FORMAT", "json")
    entry.main([])
    entry.main(["--log-level", "DEBUG", "--no-access-log"])
    env_level, flag_level = runs
    assert env_level["log_level"] == "warning" and env_level["log_config"]["root"]["level"] == "WARNING"
    assert flag_level["log_level"] == "debug" and flag_level["log_config"]["root"]["level"] == "DEBUG"
    assert env_level["access_log"] is flag_level["access_log"] is False  # uvicorn's: replaced by ours
    assert env_level["log_config"]["loggers"][ACCESS_LOGGER]["level"] == "NOTSET"
    assert flag_level["log_config"]["loggers"][ACCESS_LOGGER]["level"] == "CRITICAL"
    assert env_level["log_config"]["formatters"]["digitgen"]["()"] == "service.logs.json_formatter"


def serve_and_log(command, env):
    """Start a real server, make two requests, stop it (SIGTERM); return its stderr lines. (Until it
    is ready, uvicorn does not listen, so the readiness polls add one access line, not dozens.)"""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "DIGITGEN_DEVICE": "cpu", **env})
    try:
        wait_ready(base, proc)
        r = httpx.get(f"{base}/sample", params={"seed": 7}, headers={"X-Request-ID": "live-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "live-1"
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    return stderr.splitlines()


def check_json_log(lines):
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    started = [r for r in records if r["logger"] == "uvicorn.error" and r["message"].startswith("Started server")]
    assert len(started) == 1 and started[0]["level"] == "INFO"
    access = [r for r in records if r["logger"] == ACCESS_LOGGER]
    sample = [r for r in access if r["request_id"] == "live-1"]
    assert len(sample) == 1, access  # once: uvicorn's own access log is off
    assert sample[0]["path"] == "/sample?seed=7" and sample[0]["status"] == 200 and sample[0]["method"] == "GET"
    assert sample[0]["latency_ms"] > 0 and sample[0]["client"].startswith("127.0.0.1:")
    missing = [r for r in access if r["path"] == "/nope"]
    assert len(missing) == 1 and missing[0]["status"] == 404 and UUID4_HEX.fullmatch(missing[0]["request_id"])
    assert not any(r["logger"] == "uvicorn.access" for r in records)


def test_python_m_service_logs_json_lines(tiny_weights):
    # DIGITGEN_LOG_LEVEL=warning would hide the INFO lines; the flag overrides it
    lines = serve_and_log([sys.executable, "-m", "service", "--log-level", "info"],
                          {"DIGITGEN_WEIGHTS_DIR": str(tiny_weights), "DIGITGEN_LOG_FORMAT": "json",
                           "DIGITGEN_LOG_LEVEL": "warning"})
    check_json_log(lines)


def test_uvicorn_service_main_app_logs_json_lines_too(tiny_weights):
    lines = serve_and_log([sys.executable, "-m", "uvicorn", "service.main:app"],
                          {"DIGITGEN_WEIGHTS_DIR": str(tiny_weights), "DIGITGEN_LOG_FORMAT": "json"})
    check_json_log(lines)


def test_log_level_setting_quietens_python_m_service(tiny_weights):
    lines = serve_and_log([sys.executable, "-m", "service"],
                          {"DIGITGEN_WEIGHTS_DIR": str(tiny_weights), "DIGITGEN_LOG_LEVEL": "WARNING"})
    assert not [line for line in lines if " INFO " in line], lines  # no startup lines, no access lines


# --- /metrics ---------------------------------------------------------------------------------

def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_include_process_platform_and_gc_collectors(client):
    client.get("/sample", params={"seed": 1})
    found = families(client.get("/metrics").text)
    assert found["process_resident_memory_bytes"].samples[0].value > 0
    assert found["process_cpu_seconds"].type == "counter"
    assert found["python_info"].samples[0].labels["implementation"]
    assert found["python_gc_collections"].samples
    for name, family in found.items():
        assert len(family.documentation.split()) >= 3, (name, family.documentation)


def test_multiprocess_scrapes_leave_out_per_process_series(monkeypatch, tmp_path):
    """prometheus-client cannot combine process_* across workers: those series are left out rather
    than reporting whichever worker answered; python_info is the same in every worker."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = Metrics().exposition().decode()
    assert "python_info{" in text
    assert "process_resident_memory_bytes" not in text and "python_gc_" not in text


def test_metrics_are_public_unless_the_setting_asks_for_the_key(tiny_weights):
    with make_client(tiny_weights, api_key="s3cret") as c:
        assert c.get("/metrics").status_code == 200  # like the probes
        assert c.get("/models").status_code == 401
    with make_client(tiny_weights, api_key="s3cret", metrics_require_key=True) as c:
        r = c.get("/metrics")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and "digitgen_ready 1.0" in r.text
    with make_client(tiny_weights, metrics_require_key=True) as c:  # no key set: nothing to require
        assert c.get("/metrics").status_code == 200


# --- CORS -------------------------------------------------------------------------------------

def test_cors_exposes_the_service_headers(tiny_weights):
    origin = "https://app.example"
    with make_client(tiny_weights, cors_origins=[origin]) as c:
        for params in ({"seed": 4}, {"seed": 4, "format": "json"}):  # lean path and FastAPI route
            r = c.get("/sample", params=params, headers={"Origin": origin, "X-Request-ID": "cors-1"})
            assert r.headers["access-control-allow-origin"] == origin and r.headers["x-request-id"] == "cors-1"
            exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
            assert {"x-seed", "x-seed-a", "x-seed-b", "x-model", "x-request-id", "x-label-source", "etag"} <= exposed
        preflight = c.options("/sample", headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                                  "Access-Control-Request-Headers": "X-Request-ID"})
        assert preflight.status_code == 200
        assert "x-request-id" in preflight.headers["access-control-allow-headers"].lower()
