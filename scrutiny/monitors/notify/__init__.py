"""Where measurements and alerts go beyond the store: webhooks, Prometheus."""
