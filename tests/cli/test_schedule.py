from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from mlflow_green.cli.main import main

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _csv(tmp_path, values):
    path = tmp_path / "f.csv"
    path.write_text(
        "datetime,carbon_intensity\n"
        + "".join(f"{(T0 + timedelta(hours=i)).isoformat()},{v}\n" for i, v in enumerate(values))
    )
    return path


def test_best_window_json(tmp_path, capsys):
    values = [400] * 10 + [100, 50, 60] + [400] * 35  # 48 hours
    assert (
        main(["schedule", "--duration", "2h", "--forecast", str(_csv(tmp_path, values)), "--json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["start"] == (T0 + timedelta(hours=11)).isoformat()
    assert data["end"] == (T0 + timedelta(hours=13)).isoformat()
    assert data["mean_intensity_g_per_kwh"] == pytest.approx(55)
    assert data["now_mean_intensity_g_per_kwh"] == pytest.approx(400)
    assert data["saving_pct"] == pytest.approx(86.25)


def test_em_json_file_and_text(tmp_path, capsys):
    path = tmp_path / "f.json"
    path.write_text(
        json.dumps(
            [
                {"datetime": (T0 + timedelta(hours=i)).isoformat(), "carbonIntensity": v}
                for i, v in enumerate([300, 200, 100])
            ]
        )
    )
    assert main(["schedule", "--duration", "90m", "--forecast", str(path)]) == 0
    assert "best start 2026-03-01T01:00:00+00:00" in capsys.readouterr().out


def test_regions_static(capsys):
    assert (
        main(
            ["schedule", "--duration", "6h", "--regions", "aws:us-east-1,aws:eu-north-1", "--json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["region"] == "aws:eu-north-1" and data["saving_pct"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "5h", "--forecast", "{csv}"], "shorter than the duration"),
        (["--duration", "soon", "--forecast", "{csv}"], "--duration 'soon'"),
        (["--duration", "1h", "--forecast", "{missing}"], "no such file"),
        (["--duration", "1h", "--forecast", "{bad}"], "not a number"),
        (["--duration", "1h"], "give --forecast FILE"),
        (["--duration", "1h", "--zone", "FR"], "ELECTRICITYMAPS_API_TOKEN"),
        (
            ["--duration", "1h", "--regions", "aws:us-east-1", "--forecast", "{csv}"],
            "cannot be combined",
        ),
        (["--duration", "1h", "--regions", "aws:nowhere-9"], "nowhere-9"),
    ],
)
def test_errors_one_line_exit_2(tmp_path, capsys, argv, message):
    csv = _csv(tmp_path, [1, 2, 3, 4])
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,carbon_intensity\n2026-03-01T00:00:00Z,n/a\n")
    argv = [a.format(csv=csv, missing=tmp_path / "nope.csv", bad=bad) for a in argv]
    assert main(["schedule", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
