"""Quality: how well predictions match feedback labels."""

from scrutiny.monitors.builtin.quality.monitor import QualityMonitor

__all__ = ["QualityMonitor"]
