"""Deployment helpers that run inside the image (the chart's hook Jobs); not imported by the gateway or the API."""
