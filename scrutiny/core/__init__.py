"""The domain kernel: the scoring format, schemas, asset properties, outputs, the subscription and
its layout, training statistics. Pure data and rules: it imports nothing of Scrutiny's but
``scrutiny.errors``."""
