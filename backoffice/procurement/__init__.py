"""Procurement: vehicles planned, ordered and delivered (delivery registers the vehicle)."""
