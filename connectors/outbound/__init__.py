"""Outbound deliveries to EMRs (connectors): destinations, the outbox relay, transports and the delivery engine."""
