"""Calico interop: projectcalico.org/v3 HostEndpoint, GlobalNetworkPolicy and
GlobalNetworkSet YAML to a nodewall TOML profile (importer) and back (exporter)."""
