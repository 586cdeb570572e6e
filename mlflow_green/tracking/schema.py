"""The metric and tag names of the public contract (../shared/ARCHITECTURE.md).

Every other module uses these constants; nothing spells a ``green/`` key by hand.
"""

from __future__ import annotations

PREFIX = "green/"

# Per epoch (the value is for that epoch alone), logged at step = epoch index.
ENERGY_KWH = "green/energy_kwh"
GPU_ENERGY_KWH = "green/gpu_energy_kwh"
CPU_ENERGY_KWH = "green/cpu_energy_kwh"
RAM_ENERGY_KWH = "green/ram_energy_kwh"
GPU_POWER_W = "green/gpu_power_w"
INTENSITY_G_PER_KWH = "green/intensity_g_per_kwh"
CO2EQ_KG = "green/co2eq_kg"
EMBODIED_KG = "green/embodied_kg"
TOTAL_CO2EQ_KG = "green/total_co2eq_kg"
EPOCH_SECONDS = "green/epoch_seconds"

# Cumulative (the run total so far).
CUM_ENERGY_KWH = "green/cum_energy_kwh"
CUM_CO2EQ_KG = "green/cum_co2eq_kg"
CUM_EMBODIED_KG = "green/cum_embodied_kg"
CUM_TOTAL_CO2EQ_KG = "green/cum_total_co2eq_kg"
EMBODIED_SHARE = "green/embodied_share"
ACCURACY_PER_KG = "green/accuracy_per_kg"
PROJECTED_TOTAL_CO2EQ_KG = "green/projected_total_co2eq_kg"
PROJECTED_ENERGY_KWH = "green/projected_energy_kwh"
# Which job of a resumed run logged the epoch: 0 for the first, 1 after the first resume...
SEGMENT = "green/segment"

PER_EPOCH_KEYS: tuple[str, ...] = (
    ENERGY_KWH,
    GPU_ENERGY_KWH,
    CPU_ENERGY_KWH,
    RAM_ENERGY_KWH,
    GPU_POWER_W,
    INTENSITY_G_PER_KWH,
    CO2EQ_KG,
    EMBODIED_KG,
    TOTAL_CO2EQ_KG,
    EPOCH_SECONDS,
)
CUMULATIVE_KEYS: tuple[str, ...] = (
    CUM_ENERGY_KWH,
    CUM_CO2EQ_KG,
    CUM_EMBODIED_KG,
    CUM_TOTAL_CO2EQ_KG,
    EMBODIED_SHARE,
)


def gpu_device_energy_key(index: int) -> str:
    """``green/gpu{i}_energy_kwh`` for one device, where there are several."""
    return f"green/gpu{index}_energy_kwh"


# Scale-out (issue 18): this job's share of shared GPUs over the epoch (0..1, the ``share:``
# methods), and, on a job over several nodes, each node's IT energy.
GPU_SHARE = "green/gpu_share"
CPU_SHARE = "green/cpu_share"


def node_energy_key(index: int) -> str:
    """``green/node{i}_energy_kwh``: the IT energy of node ``i`` of a multi-node job."""
    return f"green/node{index}_energy_kwh"


# Run tags (provenance).
TAG_VERSION = "green.version"
TAG_LOCATION = "green.location"
TAG_INTENSITY_SOURCE = "green.intensity_source"
TAG_INTENSITY_BASIS = "green.intensity_basis"  # lifecycle | direct | unspecified (a fixed value)
TAG_PUE = "green.pue"
TAG_GPU_MODEL = "green.gpu_model"
TAG_GPU_COUNT = "green.gpu_count"
TAG_METHOD_GPU = "green.method.gpu"
TAG_METHOD_CPU = "green.method.cpu"
TAG_METHOD_RAM = "green.method.ram"
TAG_EMBODIED_PROFILE = "green.embodied_profile"
TAG_STATUS = "green.status"
TAG_STOP_REASON = "green.stop_reason"
TAG_LINEAGE = "green.lineage"
TAG_ACCURACY_METRIC = "green.accuracy_metric"
# ``green.location`` of a job whose nodes sit in different grids; the per-node breakdown
# (``node<i>=<location>@<intensity> g/kWh,pue=<p>;...``) is in ``green.location.nodes``.
LOCATION_MIXED = "mixed"
TAG_LOCATION_NODES = "green.location.nodes"
# The first step of each segment of a resumed run, comma-separated ("0,5,9").
TAG_SEGMENTS = "green.segments"
# The run a resumed job's checkpoint belongs to, when the job now logs into another run (a run
# MLflow's own autolog opened, or one the user started): this run's cumulative figures and
# epoch numbers continue that run's, so its totals are the whole job's.
TAG_RESUMED_FROM = "green.resumed_from"

STATUS_OK = "ok"


def degraded(why: str) -> str:
    """The ``green.status`` value of a degraded run."""
    return f"degraded: {why}"


# Registry: budgets are registered-model tags; evidence is written on the model version.
BUDGET_PREFIX = "green.budget."
BUDGET_TOTAL_CO2EQ_KG = "total_co2eq_kg"
BUDGET_CO2EQ_KG = "co2eq_kg"
BUDGET_ENERGY_KWH = "energy_kwh"
BUDGET_MIN_ACCURACY_PER_KG = "min_accuracy_per_kg"
BUDGET_CO2EQ_MARKET_KG = "co2eq_market_kg"  # issue 19: Scope 2 market-based
BUDGET_KEYS: tuple[str, ...] = (
    BUDGET_TOTAL_CO2EQ_KG,
    BUDGET_CO2EQ_KG,
    BUDGET_ENERGY_KWH,
    BUDGET_MIN_ACCURACY_PER_KG,
    BUDGET_CO2EQ_MARKET_KG,
)

GATE_PREFIX = "green.gate."
GATE_VERDICT = "green.gate.verdict"
GATE_TOTAL_CO2EQ_KG = "green.gate.total_co2eq_kg"
GATE_ENERGY_KWH = "green.gate.energy_kwh"
GATE_CHECKED_AT = "green.gate.checked_at"
GATE_REASONS = "green.gate.reasons"
# The targets (aliases or stages) this evidence was established for, comma-separated.
GATE_SCOPE = "green.gate.scope"
# The version's footprint frozen by the gated server (JSON): computed once when the version is
# created or its source run ends; promotions judge it (docs/gate.md).
GATE_FOOTPRINT = "green.gate.footprint"
# On a registered model: the strictest value each budget tag ever had, kept by the gated server
# (green.gate.strictest.<key after green.budget.>).
GATE_STRICTEST_PREFIX = "green.gate.strictest."
# Which key attested the version's runs (``signed:<key-id> (<name>)``), or why they are
# unattested (``unattested: <reason>: <detail>``).
GATE_ATTESTATION = "green.gate.attestation"

# A signed run (attestation): ``signed:<key-id>``, with the artifact ``green/attestation.json``.
TAG_ATTESTATION = "green.attestation"

# Set on a run created after the fact from a journal (the tracking server was down at start):
# the journal's id, so that a second creation attempt finds the run instead of making another.
TAG_JOURNAL_ID = "green.journal_id"


# Issue 19: Scope 2 market-based emissions, water, SCI-for-AI units (per epoch / cumulative).
CO2EQ_MARKET_KG = "green/co2eq_market_kg"
CUM_CO2EQ_MARKET_KG = "green/cum_co2eq_market_kg"
WATER_L = "green/water_l"
CUM_WATER_L = "green/cum_water_l"
G_PER_MTOKEN = "green/g_per_mtoken"
KG_PER_BPARAM = "green/kg_per_bparam"
TAG_MARKET_SOURCE = "green.market.source"
TAG_WATER_SOURCE = "green.water_source"
