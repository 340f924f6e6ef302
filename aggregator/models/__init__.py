from aggregator.models.access import OperatorToken
from aggregator.models.markets import Market, Program, validate_time_zone
from aggregator.models.resources import (
    AggregationProposal,
    DevicePerformance,
    ResourceMembership,
    ResourceModification,
    ResourceState,
    ResourceTransition,
    ScopeKind,
    VirtualResource,
)

__all__ = [
    "AggregationProposal",
    "DevicePerformance",
    "Market",
    "OperatorToken",
    "Program",
    "ResourceMembership",
    "ResourceModification",
    "ResourceState",
    "ResourceTransition",
    "ScopeKind",
    "VirtualResource",
    "validate_time_zone",
]
