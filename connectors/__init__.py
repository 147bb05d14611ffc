"""Every edge of the hub: files, MLLP, RabbitMQ, HTTP clients to EMRs, gateways and notifiers."""
