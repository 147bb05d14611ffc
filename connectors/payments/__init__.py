"""Payment gateways (connectors): the PaymentGateway seam and its Stripe implementation."""
