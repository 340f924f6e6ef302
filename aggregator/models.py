from aggregator.aggregation.models import (
    AggregationProposal,
    DevicePerformance,
    ResourceMembership,
    ResourceModification,
    ResourceState,
    ResourceTransition,
    ScopeKind,
    VirtualResource,
)
from aggregator.core.access.models import OperatorToken
from aggregator.reference.models import Market, Program, validate_time_zone

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
