"""Calico's v3 API vocabulary and what of it a host firewall cannot express."""
from __future__ import annotations

API_VERSION = "projectcalico.org/v3"

# Calico protocol names <-> nodewall's (the model keeps lowercase names).
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "ICMP": "icmp", "ICMPv6": "icmpv6",
             "SCTP": "sctp", "UDPLite": "udplite"}
PROTOCOLS_BY_NODEWALL = {v: k for k, v in PROTOCOLS.items()}
ACTIONS = {"Allow": "allow", "Deny": "deny", "Log": "log", "Pass": "pass"}
ACTIONS_BY_NODEWALL = {v: k for k, v in ACTIONS.items()}
TYPES = {"Ingress": "ingress", "Egress": "egress"}
TYPES_BY_NODEWALL = {v: k for k, v in TYPES.items()}

_NAMESPACED = "is namespaced (nodewall manages one node's host endpoints, no namespaces)"
UNSUPPORTED_KINDS = {
    "NetworkPolicy": _NAMESPACED,
    "NetworkSet": _NAMESPACED,
    "StagedNetworkPolicy": _NAMESPACED,
    "StagedKubernetesNetworkPolicy": _NAMESPACED,
    "StagedGlobalNetworkPolicy": "(staged policy is never enforced)",
    "WorkloadEndpoint": "(workload endpoints are pods; nodewall has host endpoints only)",
    "Profile": "(nodewall has no Calico profiles; write the rules as a policy)",
    "Tier": "(nodewall has no tiers: one ordered list of policies)",
    "IPPool": "(IP address management, not host firewall)",
    "IPReservation": "(IP address management, not host firewall)",
    "BGPConfiguration": "(routing, not host firewall)",
    "BGPPeer": "(routing, not host firewall)",
    "BGPFilter": "(routing, not host firewall)",
    "ClusterInformation": "(cluster state, not host firewall)",
    "KubeControllersConfiguration": "(cluster controllers, not host firewall)",
    "Node": "(node state, not host firewall)",
    "CalicoNodeStatus": "(node state, not host firewall)",
    "IPAMConfiguration": "(IP address management, not host firewall)",
    "BlockAffinity": "(IP address management, not host firewall)",
}

HEP_UNSUPPORTED = {
    "profiles": "(nodewall has no Calico profiles; write their rules as a policy)",
    "ports": "(named ports: nodewall rules match port numbers)",
}
GNS_UNSUPPORTED = {
    "allowedEgressDomains": "(domain-name matching needs DNS inspection nodewall does not do)",
}
POLICY_UNSUPPORTED = {
    "serviceAccountSelector": "(service accounts belong to pods, not host endpoints)",
    "namespaceSelector": "(nodewall has no namespaces)",
    "stagedAction": "(staged policy is never enforced)",
}
RULE_UNSUPPORTED = {
    "http": "(HTTP matches need an L7 proxy; nodewall filters packets)",
}
ENTITY_UNSUPPORTED = {
    "namespaceSelector": "(nodewall has no namespaces)",
    "serviceAccounts": "(service accounts belong to pods, not host endpoints)",
    "services": "(Kubernetes services are not known to nodewall)",
}
FELIX_FAILSAFE_KEYS = {"failsafeInboundHostPorts": "failsafe_inbound",
                       "failsafeOutboundHostPorts": "failsafe_outbound"}
# [settings] that Calico has no field for travel as FelixConfiguration annotations.
ANNOTATION_PREFIX = "nodewall/"
SETTINGS_ANNOTATIONS = {"nodewall/backend": "backend", "nodewall/xdp-mode": "xdp_mode",
                        "nodewall/max-set-entries": "max_set_entries"}
