"""Tests of infra/: Prometheus, alert rules, Grafana provisioning and dashboards, OTel collector."""
