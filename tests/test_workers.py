"""`python -m service --workers N`: every worker serves, /metrics adds up all of them, and each
worker's inference thread gets its share of the cores."""
import re

import httpx

from service.__main__ import prepare_workers
from tests.conftest import live_server

SAMPLES = 24


def _count(metrics: str) -> float:
    pattern = r'^digitgen_requests_total\{method="GET",model="gan",route="/sample",status="200"\} (\S+)$'
    match = re.search(pattern, metrics, re.M)
    return float(match.group(1)) if match else 0.0


def test_two_workers_serve_and_every_scrape_counts_both(tiny_weights, tmp_path):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999.db").write_bytes(b"left over from an earlier run")
    env = {"DIGITGEN_WEIGHTS_DIR": str(tiny_weights), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with live_server(env, extra_args=("--workers", "2")) as (base, _):
        for seed in range(SAMPLES):  # a new connection each: the workers share the listening socket
            r = httpx.get(f"{base}/sample", params={"model": "gan", "seed": seed}, headers={"Connection": "close"})
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        # scrapes on new connections land on either worker; without the shared directory each would
        # report only its own requests, and two scrapes on different workers would disagree
        scrapes = [httpx.get(f"{base}/metrics", headers={"Connection": "close"}).text for _ in range(8)]
    assert [_count(s) for s in scrapes] == [SAMPLES] * 8
    assert all("digitgen_ready 1.0" in s for s in scrapes)
    assert not (metrics_dir / "counter_999.db").exists()  # a previous run's values do not count


def test_prepare_workers_shares_the_cores_and_sets_up_metrics(tmp_path):
    single: dict = {}
    prepare_workers(1, single)
    assert single == {}  # one worker: nothing changes
    env: dict = {}
    prepare_workers(2, env)
    assert int(env["DIGITGEN_TORCH_THREADS"]) >= 1 and env["PROMETHEUS_MULTIPROC_DIR"]
    chosen = {"DIGITGEN_TORCH_THREADS": "3", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    prepare_workers(4, chosen)
    assert chosen == {"DIGITGEN_TORCH_THREADS": "3", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}


def test_usable_cores_respects_a_containers_cpu_limit(tmp_path):
    from service.config import usable_cores
    every = usable_cores(tmp_path / "absent")  # no cgroup file: the affinity mask
    assert every >= 1
    limit = tmp_path / "cpu.max"
    limit.write_text("150000 100000\n")  # 1.5 CPUs: two cores' worth of threads, rounded up
    assert usable_cores(limit) == min(every, 2)
    limit.write_text("50000 100000\n")
    assert usable_cores(limit) == 1
    limit.write_text("max 100000\n")  # no limit
    assert usable_cores(limit) == every


def test_workers_flag_takes_a_count_or_auto():
    import argparse

    import pytest

    from service.__main__ import worker_count
    from service.config import usable_cores
    assert worker_count("3") == 3
    assert worker_count("auto") == min(usable_cores(), 4)
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError):
            worker_count(bad)
