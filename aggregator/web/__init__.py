"""The operator console and the customer portal: server-rendered pages over the domain apps' services."""
