from __future__ import annotations

import aiohttp
import msgspec
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from progressd import __version__
from progressd.clock import FakeClock
from progressd.telemetry import LoopLagProbe, MetricSpec, StatisticsCollector, Telemetry


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str) -> dict[str, float]:
    return {
        s.name + str(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_loop_lag_probe_records_how_late_the_wake_was() -> None:
    clock = FakeClock(100.0)
    telemetry = Telemetry()
    probe = LoopLagProbe(clock, telemetry.loop_lag)
    clock.advance(0.030)
    assert abs(probe.sample(expected=100.010) - 0.020) < 1e-9
    clock.advance(0.001)
    probe.sample(expected=100.031)
    assert probe.last == 0.0
    assert abs(probe.max_seen - 0.020) < 1e-9
    got = samples(telemetry.render().decode())
    assert got["progressd_loop_lag_seconds_count[]"] == 2
    assert got["progressd_loop_lag_seconds_bucket[('le', '0.01')]"] == 1
    assert got["progressd_loop_lag_seconds_bucket[('le', '0.025')]"] == 2


def test_loop_lag_probe_never_reports_negative_lag() -> None:
    clock = FakeClock(5.0)
    probe = LoopLagProbe(clock)
    assert probe.sample(expected=6.0) == 0.0


def test_telemetry_exposes_build_info_and_process_metrics() -> None:
    text = Telemetry().render().decode()
    found = families(text)
    assert "progressd_build_info" in found
    assert f'version="{__version__}"' in text
    assert "process_resident_memory_bytes" in found
    assert "progressd_loop_lag_seconds" in found


def test_telemetry_keeps_its_own_registry() -> None:
    Telemetry()
    Telemetry()  # a second instance must not collide in a shared registry
    assert REGISTRY.get_sample_value("progressd_build_info") is None


class Stats(msgspec.Struct, frozen=True):
    things: int
    done: int


def test_statistics_collector_reads_the_source_at_scrape_time() -> None:
    telemetry = Telemetry()
    current = [Stats(things=3, done=7)]
    collector = StatisticsCollector(
        lambda: current[0],
        [
            MetricSpec("things", "progressd_things", "Things now."),
            MetricSpec("done", "progressd_done", "Things done.", kind="counter"),
        ],
    )
    telemetry.register(collector)
    first = samples(telemetry.render().decode())
    current[0] = Stats(things=1, done=9)
    second = samples(telemetry.render().decode())
    assert (first["progressd_things[]"], first["progressd_done_total[]"]) == (3, 7)
    assert (second["progressd_things[]"], second["progressd_done_total[]"]) == (1, 9)
    telemetry.unregister(collector)
    assert "progressd_things[]" not in samples(telemetry.render().decode())


async def test_telemetry_serves_metrics_over_tcp() -> None:
    telemetry = Telemetry()
    host, port = await telemetry.start("127.0.0.1", 0)
    try:
        assert port > 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/metrics") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    finally:
        await telemetry.stop()
    assert "progressd_build_info" in families(text)
