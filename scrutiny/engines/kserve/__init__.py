"""KServe: the v1 data plane and the Open Inference Protocol (v2)."""
