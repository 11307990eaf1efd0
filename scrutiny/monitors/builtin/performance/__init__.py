"""Performance: traffic and response times of the logged payload."""

from scrutiny.monitors.builtin.performance.monitor import PerformanceMonitor

__all__ = ["PerformanceMonitor"]
