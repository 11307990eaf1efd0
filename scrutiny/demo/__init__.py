"""The demo: a real credit-risk model behind a custom ML engine, and a traffic generator."""
