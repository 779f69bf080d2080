"""Serving one request along a route: the loaded config as route plans and live backends, attempts with retries,
fallbacks and breakers, API crossings, and structured-output checks."""
