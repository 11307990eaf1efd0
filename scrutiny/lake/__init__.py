"""The payload lake: subscriptions' record tables as Apache Iceberg tables (or a team's own
Parquet or Iceberg table, registered with a column mapping), read by the monitor executors."""
