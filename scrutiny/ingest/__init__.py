"""Every payload and feedback batch becomes a columnar RecordBatch here, then one transaction writes it."""
