"""Tell a stored series' golden-signal role from its name, labels and unit.

The ranker (:mod:`diagnose.rank`) weighs evidence by role: latency, errors and saturation point
at a service, traffic less so, host metrics hardly at all, and a service's *client* latency says
it is waiting on someone else. Roles come from the naming conventions people already follow
(OpenTelemetry semantic conventions, Prometheus naming, Kubernetes exporters); nothing here
knows a particular estate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from diagnose.rank import SeriesInfo, Signal

__all__ = ["classify"]

_HOST = re.compile(r"^(node|host|machine|kube_node|system)_|(^|_)node_")
_CLIENT = re.compile(r"(^|[_.])(client|outbound|upstream|egress|downstream)([_.]|$)")
_LATENCY = re.compile(r"(duration|latency|response_time|_time_seconds|_seconds_p\d+|_p\d\d(_seconds)?$|wait)")
_SUCCESS = re.compile(r"(success|availability|_ok_ratio|goodput)")
_ERRORS = re.compile(r"(error|errors|fail|failure|exception|5xx|fault|timeout|reject|dropped)")
_SATURATION = re.compile(
    r"(cpu|memory|mem_|_mem|heap|gc_|disk|filesystem|_fs_|io_|iops|inode|thread|"
    r"connections|pool|queue|saturation|utili[sz]ation|load|swap|oom|fd|file_descriptors|throttl)"
)
_TRAFFIC = re.compile(r"(request|requests|rps|qps|throughput|ops|calls|count|rate|messages|bytes|packets)")
_ERROR_LABELS = {"status_class": ("5xx",), "outcome": ("failure", "error"), "status": ("error", "failed")}


def classify(
    name: str, labels: Mapping[str, str] | None = None, unit: str = "", service: str = ""
) -> SeriesInfo:
    """The :class:`~diagnose.rank.SeriesInfo` of one series.

    Examples
    --------
    >>> classify("http_server_request_duration_p99_seconds", {"service": "a"}, "s", "a").signal
    'latency'
    >>> classify("http_client_request_duration_seconds", {}, "s", "a").signal
    'downstream_latency'
    >>> classify("http_server_request_count:rate", {"status_class": "5xx"}, "", "a").signal
    'errors'
    >>> info = classify("grpc_success_ratio", {}, "1", "a")
    >>> info.signal, info.higher_is_worse
    ('errors', False)
    >>> classify("process_cpu_utilization", {}, "1", "a").signal
    'saturation'
    >>> classify("node_memory_usage_ratio", {}, "1", "a").signal
    'host'
    """
    labels = labels or {}
    lower = name.lower()
    metric = name + _label_suffix(labels)
    signal: Signal
    higher_is_worse = True
    if _HOST.search(lower):
        signal = "host"
    elif _SUCCESS.search(lower):
        signal, higher_is_worse = "errors", False
    elif _ERRORS.search(lower) or any(
        labels.get(key, "").lower() in values for key, values in _ERROR_LABELS.items()
    ):
        signal = "errors"
    elif _LATENCY.search(lower) or unit in ("s", "ms", "us"):
        signal = "downstream_latency" if _CLIENT.search(lower) else "latency"
    elif _SATURATION.search(lower):
        signal = "saturation"
    elif _TRAFFIC.search(lower):
        signal = "traffic"
    else:
        signal = "other"
    return SeriesInfo(service=service or labels.get("service", ""), metric=metric, signal=signal,
                      higher_is_worse=higher_is_worse)  # fmt: skip


def _label_suffix(labels: Mapping[str, str]) -> str:
    """The labels that tell apart a service's series of one name (not the service itself)."""
    keep = {k: v for k, v in labels.items() if k not in ("service", "service_name", "job", "instance", "env")}
    if not keep:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(keep.items())) + "}"
