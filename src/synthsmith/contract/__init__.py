"""The contract every part shares: the tables and their columns (`tables`), params.yaml (`params`),
the value sets (`values`), the per-stage funnel (`funnel`) and the shape of metrics.json (`metrics`)."""
