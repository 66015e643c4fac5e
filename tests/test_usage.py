"""Usage series and peaks from metric samples, and progress reports (pure, fast)."""

from __future__ import annotations

import json

import pytest

from tests.hub_standin import metric_sample
from trainer_space.jobs.progress import Progress, latest_progress, peak_gpu_memory, progress_report
from trainer_space.jobs.usage import GIB, MAX_POINTS, Usage


def test_samples_become_series_with_peaks_kept_past_the_chart_window():
    usage = Usage()
    usage.add([metric_sample(cpu_pct=50, ram_gb=4, gpus=[(90, 20.0, 24.0), (40, 10.0, 24.0)])], read_at=1000.0)
    usage.add([metric_sample(cpu_pct=10, ram_gb=2, gpus=[(10, 5.0, 24.0), (5, 4.0, 24.0)])] * MAX_POINTS,
              read_at=1000.0)  # fmt: skip
    assert len(usage.samples) == MAX_POINTS and usage.peaks.samples == MAX_POINTS + 1
    times = [s.t for s in usage.samples]
    assert times == sorted(times) and len(set(times)) == len(times)  # one second apart, never going back
    peaks = usage.peaks  # the first sample left the charts, its peaks did not
    assert round(peaks.gpu_mem_gb * GIB / 1e9, 3) == 20.0 and peaks.gpu_util_pct == 90 and peaks.cpu_pct == 50
    assert {r["gpu"] for r in usage.gpu_rows()} == {"GPU 0", "GPU 1"}
    assert {r["series"] for r in usage.host_rows()} == {"CPU %", "RAM %"}
    again = Usage.from_json(usage.to_json())  # through a Gradio State
    assert again.peaks == usage.peaks and len(again.samples) == MAX_POINTS
    assert "GPU memory peak 18.6 of 22 GB" in again.summary()


def test_no_gpu_is_said():
    usage = Usage()
    assert "No usage sample yet" in usage.summary()
    usage.add([metric_sample(cpu_pct=120, ram_gb=3)])
    assert not usage.peaks.has_gpu and usage.gpu_rows() == []
    assert "no GPU" in usage.summary() and "CPU peak 120%" in usage.summary()


def test_progress_reports_bar_eta_and_no_progress_plainly():
    lines = ["loading", 'TRAINER_SPACE_PROGRESS {"step":10,"total":40,"eta_s":300,"t":1000,"peak_gpu_mem_gb":9.5}',
             "{'loss': 1.2}", 'TRAINER_SPACE_PROGRESS {"step":20,"total":40,"eta_s":200,"t":1100,"peak_gpu_mem_gb":9.7}',
             "Saving checkpoint"]  # fmt: skip
    latest = latest_progress(lines)
    assert latest.step == 20 and peak_gpu_memory(lines) == 9.7  # the latest progress line, not the last log line
    now = 1150.0
    report = progress_report(latest, "RUNNING", started_at=900, now=now, stall_after_s=600)
    assert report.fraction == 0.5 and report.eta_s == 150 and not report.stalled
    assert report.text == "Step 20 of 40, about 2 min 30 s left."
    stuck = progress_report(latest, "RUNNING", started_at=900, now=1100 + 11 * 60, stall_after_s=600)
    assert stuck.stalled and stuck.text.startswith("No progress for 11 minutes while RUNNING (last at step 20 of 40)")
    never = progress_report(None, "RUNNING", started_at=0, now=20 * 60, stall_after_s=600)
    assert never.stalled and never.text.startswith("No progress for 20 minutes while RUNNING")
    assert not progress_report(None, "RUNNING", started_at=0, now=60, stall_after_s=600).stalled
    assert progress_report(None, "SCHEDULING", started_at=None).text.startswith("Waiting for hardware")
    ended = progress_report(Progress(step=20, total=40, t=1100), "ERROR", started_at=900, now=5000)
    assert ended.fraction == 0.5 and not ended.stalled and "Ended (error) at step 20 of 40" in ended.text
    assert Progress.from_json(latest.to_json()) == latest


def test_hostile_progress_lines_are_no_progress_and_hostile_cells_are_inert_in_the_csv():
    import pandas as pd

    from trainer_space.jobs.config import TrainingConfig
    from trainer_space.jobs.progress import parse_progress, peak_gpu_memory, progress_report
    from trainer_space.ui.jobs_tab import spreadsheet_safe

    for line in ("TRAINER_SPACE_PROGRESS " + "[" * 100_000, "TRAINER_SPACE_PROGRESS " + '{"a":' * 5000):
        assert parse_progress(line) is None
    assert peak_gpu_memory(["TRAINER_SPACE_PROGRESS " + "[" * 100_000]) is None
    ancient = parse_progress('TRAINER_SPACE_PROGRESS {"step": 3, "total": 10, "t": -1}')
    report = progress_report(ancient, "RUNNING", started_at=1000.0, now=1060.0)
    assert not report.stalled  # the job's own clock is kept between its start and now
    frame = pd.DataFrame([{"job": "=cmd|' /C calc'!A0", "model": "+a10g", "ratio": -1.5, "x": "@sum(1)"}])
    assert spreadsheet_safe(frame).iloc[0].tolist() == ["'=cmd|' /C calc'!A0", "'+a10g", -1.5, "'@sum(1)"]
    with pytest.raises(Exception, match="nested too deeply"):
        TrainingConfig.from_dict("[" * 45_000 + "]" * 45_000)


def test_the_last_checkpoint_saved_and_pushed_come_from_any_progress_line():
    from trainer_space.jobs.progress import last_checkpoint

    def line(step: int, checkpoint: object = None) -> str:
        data = {"step": step, "total": 40, "t": 1000 + step} | ({"checkpoint": checkpoint} if checkpoint else {})
        return "TRAINER_SPACE_PROGRESS " + json.dumps(data)

    assert last_checkpoint([line(5), line(10)]) is None  # lines that say nothing of checkpoints: none
    lines = [line(10, {"step": 10, "saved_t": 1010.0, "pushed_t": None}), "Saving checkpoint",
             line(12, {"step": 10, "saved_t": 1010.0, "pushed_t": 1030.5}), line(20, {"step": 20, "saved_t": 1050.0}),
             line(21), line(22, {"step": "x", "saved_t": "soon"}), line(23, ["not", "an", "object"])]  # fmt: skip
    found = last_checkpoint(lines)
    assert (found.saved_step, found.saved_t) == (20, 1050.0)  # the latest saved: not pushed yet ...
    assert (found.pushed_step, found.pushed_t) == (10, 1030.5)  # ... the one before is on the Hub
    report = progress_report(latest_progress(lines), "RUNNING", started_at=900, now=1100, stall_after_s=600)
    assert report.idle_s == 1100 - 1023 and not report.stalled
