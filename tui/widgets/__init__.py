"""The monitor's pieces; each renders a slice of a `MonitorView`."""

from tui.widgets.endpoints import EndpointTable
from tui.widgets.errors import ErrorLog
from tui.widgets.experiments import ExperimentGrid, ExperimentPanel
from tui.widgets.panel import WorkerGrid, WorkerPanel
from tui.widgets.summary import RunSummary

__all__ = [
    "EndpointTable", "ErrorLog", "ExperimentGrid", "ExperimentPanel", "RunSummary", "WorkerGrid",
    "WorkerPanel",
]
