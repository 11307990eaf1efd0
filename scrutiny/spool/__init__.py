"""The durable spool of scored exchanges: append-only, group-fsynced segments, drained to a sink.
Shared by the scoring proxy (server side) and the embeddable logger (client side)."""
