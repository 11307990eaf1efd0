"""Read queries the dashboard's pages run: bounded, index-driven, aggregated in the database."""
