"""Running a monitor: the window of records, the reader, the runner, measurements and alerts."""
