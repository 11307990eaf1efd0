"""The monitors Scrutiny ships: quality, performance, drift, fairness, one folder each."""
