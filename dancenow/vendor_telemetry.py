"""OpenVINO's usage reporting, declined for every process of ours.

`import openvino` (through its converter, `openvino.tools.ovc`) and `import nncf` report usage to
Google Analytics unless the user has run `opt_in_out --opt_out`. We send nothing anywhere. And each
report is a process forked from a thread pool: in a process with other threads that fork hung in
the child (Python freeing another thread's cached PyAV reformatter, whose slice threads are not in
the child), leaving a stuck process behind, and it once stopped OpenBLAS's threads in the middle of
the main thread's matrix product, which then waited for them for ever (a full test run froze so).
Consent is declined for this process only, before OpenVINO is imported; the user's consent file
is left as it is.
"""

from __future__ import annotations


def decline() -> None:
    """No report from OpenVINO's converter or NNCF in this process, even one that asked already."""
    try:
        from openvino_telemetry import Telemetry
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # not installed (or reorganised): then it sends nothing we could stop here
        return
    OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED
    made = getattr(Telemetry, "_SingletonMetaClass__single_instance", None)  # asked before this call
    if made is not None:
        made.consent = False
