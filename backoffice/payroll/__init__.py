"""Payroll: monthly runs by configurable rules (a China profile), payslips, posting to finance's ledger."""
