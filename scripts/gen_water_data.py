"""Regenerate ``mlflow_green/accounting/data/water_countries.csv`` (off-site water, L/kWh).

Method (the one of Macknick et al. and of the "water intensity of electricity" literature):
a country's consumptive water per kWh generated is its generation mix weighted by each
technology's median operational water consumption factor.

- Mix: Ember / Our World in Data electricity generation by source (TWh), as shipped in
  CodeCarbon 3.3.2 (``codecarbon/data/private_infra/global_energy_mix.json``) — the same file
  the location-based country intensities come from.
- Factors: Macknick, Newmark, Heath, Hallett (2012), "Operational water consumption and
  withdrawal factors for electricity generating technologies: a review of existing literature",
  Environ. Res. Lett. 7 045802, https://doi.org/10.1088/1748-9326/7/4/045802 — median
  consumption, gal/MWh, cooling-tower variant where cooling matters (the most common one).
- World: the same weighting over the sum of every country's mix in the file.

Run: ``python scripts/gen_water_data.py`` (needs ``codecarbon==3.3.2`` installed).
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

L_PER_GAL = 3.785411784
# source key in the mix -> (Macknick 2012 median consumption, gal/MWh; the technology row used)
FACTORS: dict[str, tuple[float, str]] = {
    "coal_TWh": (687.0, "coal, generic, cooling tower"),
    "gas_TWh": (205.0, "natural gas combined cycle, cooling tower"),
    "oil_TWh": (826.0, "steam turbine, cooling tower (natural gas steam row, used for oil)"),
    "nuclear_TWh": (672.0, "nuclear, cooling tower"),
    "hydroelectricity_TWh": (4491.0, "hydropower, in-stream evaporation"),
    "solar_TWh": (1.0, "solar PV, utility scale"),
    "wind_TWh": (0.0, "wind"),
    "biofuel_TWh": (553.0, "biopower, steam, cooling tower"),
    "other_renewable_exc_biofuel_TWh": (15.0, "geothermal, flash, cooling tower"),
}
OUT = (
    Path(__file__).resolve().parents[1]
    / "mlflow_green"
    / "accounting"
    / "data"
    / "water_countries.csv"
)
SOURCE = (
    "Ember/OWID generation mix by source (codecarbon 3.3.2 global_energy_mix.json) weighted by "
    "Macknick et al. (2012) Environ. Res. Lett. 7 045802 median operational water consumption "
    "factors (https://doi.org/10.1088/1748-9326/7/4/045802); scripts/gen_water_data.py"
)


def _l_per_kwh(mix: dict[str, float]) -> float | None:
    total = sum(mix.get(k, 0.0) or 0.0 for k in FACTORS)
    if total <= 0:
        return None
    gal_per_mwh = sum((mix.get(k, 0.0) or 0.0) * f for k, (f, _) in FACTORS.items()) / total
    return gal_per_mwh * L_PER_GAL / 1000.0


def main() -> None:
    path = resources.files("codecarbon").joinpath("data/private_infra/global_energy_mix.json")
    data = json.loads(path.read_text("utf-8"))
    rows = []
    world: dict[str, float] = dict.fromkeys(FACTORS, 0.0)
    years = set()
    for iso3, mix in sorted(data.items()):
        value = _l_per_kwh(mix)
        if value is None:
            continue
        for k in FACTORS:
            world[k] += mix.get(k, 0.0) or 0.0
        years.add(int(mix["year"]))
        rows.append((iso3, mix["country_name"], round(value, 3), int(mix["year"])))
    world_value = _l_per_kwh(world)
    assert world_value is not None
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["iso3", "name", "l_per_kwh", "unit", "year", "dataset", "source"])
        w.writerow(
            [
                "world",
                "World (all countries of the mix)",
                round(world_value, 3),
                "L/kWh",
                max(years),
                "ember-mix x macknick2012",
                SOURCE,
            ]
        )
        for iso3, name, value, year in rows:
            w.writerow([iso3, name, value, "L/kWh", year, "ember-mix x macknick2012", SOURCE])
    print(f"wrote {len(rows)} countries + world ({world_value:.3f} L/kWh) to {OUT}")


if __name__ == "__main__":
    main()
