"""Every metric, label, group and alert name that ``slo/rules.py`` emits, in one place.

The recording-rule names and the ``sloth_*`` labels are Sloth's, so that dashboards and
Alertmanager routes built for Sloth-generated rules work unchanged on ours; alerts coming
back through Alertmanager carry ``sloth_id``/``sloth_slo``/``sloth_service``/``sloth_severity``,
which is how opsloop links them to its SLO objects. Only the info metric and the group name
prefix are opsloop's own.
"""

from __future__ import annotations

import re

__all__ = [
    "ALERT_GROUP_PREFIX",
    "CURRENT_BURN_RATE",
    "ERROR_BUDGET_RATIO",
    "INFO_BUDGETING_METHOD",
    "INFO_METRIC",
    "INFO_OBJECTIVE",
    "INFO_PERIOD",
    "INFO_SLI_KIND",
    "META_GROUP_PREFIX",
    "OBJECTIVE_RATIO",
    "PERIOD_BURN_RATE",
    "PERIOD_ERROR_BUDGET_REMAINING",
    "SEVERITY",
    "SLI_GROUP_PREFIX",
    "SLOTH_ID",
    "SLOTH_SERVICE",
    "SLOTH_SEVERITY",
    "SLOTH_SLO",
    "SLOTH_WINDOW",
    "SLO_SELECTOR_LABELS",
    "TIME_PERIOD_DAYS",
    "alert_name",
    "group_name",
    "sli_error_ratio",
    "slo_id",
]

# --- recording rules (Sloth's names) ---
#: error ratio over window ``w``: ``slo:sli_error:ratio_rate5m`` ... ``slo:sli_error:ratio_rate30d``
SLI_ERROR_RATIO_PREFIX = "slo:sli_error:ratio_rate"
OBJECTIVE_RATIO = "slo:objective:ratio"
ERROR_BUDGET_RATIO = "slo:error_budget:ratio"
TIME_PERIOD_DAYS = "slo:time_period:days"
CURRENT_BURN_RATE = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE = "slo:period_burn_rate:ratio"
PERIOD_ERROR_BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"

# --- labels (Sloth's names) ---
SLOTH_ID = "sloth_id"
SLOTH_SERVICE = "sloth_service"
SLOTH_SLO = "sloth_slo"
SLOTH_WINDOW = "sloth_window"
SLOTH_SEVERITY = "sloth_severity"
#: the labels that identify one SLO's series, in Sloth's selector order
SLO_SELECTOR_LABELS = (SLOTH_ID, SLOTH_SERVICE, SLOTH_SLO)
#: the conventional severity label on alerts (Alertmanager routes and opsloop's ingest read it)
SEVERITY = "severity"
#: the label opsloop's Alertmanager ingest reads the service from (``core.model.SERVICE_LABELS``)
SERVICE = "service"

# --- opsloop's info metric: ``vector(1)`` carrying what the SLO is ---
INFO_METRIC = "opsloop_slo_info"
INFO_OBJECTIVE = "opsloop_objective"
INFO_PERIOD = "opsloop_period"
INFO_BUDGETING_METHOD = "opsloop_budgeting_method"
INFO_SLI_KIND = "opsloop_sli_kind"

# --- rule groups, one of each per SLO ---
SLI_GROUP_PREFIX = "opsloop-slo-sli-recordings-"
META_GROUP_PREFIX = "opsloop-slo-meta-recordings-"
ALERT_GROUP_PREFIX = "opsloop-slo-alerts-"


def sli_error_ratio(window: str) -> str:
    """The recording rule name of the error ratio over ``window``.

    >>> sli_error_ratio("5m")
    'slo:sli_error:ratio_rate5m'
    """
    return f"{SLI_ERROR_RATIO_PREFIX}{window}"


def slo_id(service: str, slo: str) -> str:
    """Sloth's ``sloth_id``: ``<service>-<slo>``.

    >>> slo_id("checkout", "availability")
    'checkout-availability'
    """
    return f"{service}-{slo}"


def group_name(prefix: str, service: str, slo: str) -> str:
    """One SLO's rule group name.

    >>> group_name(ALERT_GROUP_PREFIX, "checkout", "availability")
    'opsloop-slo-alerts-checkout-availability'
    """
    return f"{prefix}{slo_id(service, slo)}"


def alert_name(slo: str) -> str:
    """The alert name of an SLO's burn-rate alerts (page and ticket share it, as in Sloth).

    >>> alert_name("checkout-availability")
    'CheckoutAvailabilitySLOBurnRate'
    >>> alert_name("api_p95.latency")
    'ApiP95LatencySLOBurnRate'
    """
    words = [w for w in re.split(r"[^A-Za-z0-9]+", slo) if w]
    return "".join(w[:1].upper() + w[1:] for w in words) + "SLOBurnRate"
