"""Governed, OpenAI-compatible serving: guard, tamper-evident audit log, kill switch, attestation."""

from charter.gateway.app import create_app
from charter.gateway.config import GatewayConfig, load_gateway_config
from charter.gateway.state import GatewayState
from charter.gateway.upstream import LocalUpstream, OpenAIUpstream, load_upstream

__all__ = [
    "GatewayConfig",
    "GatewayState",
    "LocalUpstream",
    "OpenAIUpstream",
    "create_app",
    "load_gateway_config",
    "load_upstream",
]
