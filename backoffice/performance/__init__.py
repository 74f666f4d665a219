"""Performance reviews with KPIs computed from the system, the manager's rating and an admin-approved outcome."""
