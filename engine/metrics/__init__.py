"""Prometheus metrics: one collection per scrape through the Service facade, and the HTTP endpoint (/metrics, /healthz, /readyz)."""
