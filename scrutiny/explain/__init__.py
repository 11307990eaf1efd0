"""Explanations of single decisions: LIME-style local explanations and contrastive (pertinent
positive / negative) explanations, scored through the subscription's engine in few batched
calls, and stored with the record they explain (see docs/explanations.md)."""
