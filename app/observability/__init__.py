"""What an operator sees of the service: Prometheus metrics, trace context and spans, structured logs."""
