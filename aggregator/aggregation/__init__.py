"""Aggregation: virtual resources, their members and capability, and the aggregation builder."""
