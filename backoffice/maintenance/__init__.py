"""Maintenance: the work-order archive and each vehicle's service plan."""
