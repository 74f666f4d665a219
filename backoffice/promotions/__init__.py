"""Discount codes: issued by customer service (campaigns, compensation), honoured once by order pricing."""
